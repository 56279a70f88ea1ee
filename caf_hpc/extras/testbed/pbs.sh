#!/usr/bin/env bash
# PBS/Torque commands (qsub, qstat, qdel, ...) over the testbed's Slurm, from
# Debian's slurm-wlm-torque wrappers:  pbs.sh up | down | status | env
#
# The package is not installed: it ships /usr/bin/qsub and so conflicts with
# Son of Grid Engine's client (sge.sh).  It is unpacked instead under
# $CAF_HPC_TESTBED_DIR/pbs/root, and `env` prints the PATH line that puts its
# bin directory first -- do that only where PBS is wanted.
#
#   up      start Slurm if it is down (slurm.sh up), unpack the wrappers, run
#           one smoke job through qsub.
#   down    forget the PBS layer; stops Slurm only if our `up` started it.
#   status  exit 0 when up, 3 when down.
#   env     SLURM_CONF and PATH exports.
#
# Known limit of the wrappers: qsub always passes its own -o/-e to sbatch, so
# `#PBS -o`/`#PBS -e` lines in a script are overridden and the job's output
# lands beside the script.  Give -o/-e on the qsub command line instead.
set -euo pipefail
TB_NAME=pbs
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SLURM_SH=$TB_HERE/slurm.sh
ROOT=$TB_STATE/root
BIN=$ROOT/usr/bin
UP_MARK=$TB_STATE/up
STARTED_SLURM=$TB_STATE/started-slurm
eval "$(bash "$SLURM_SH" env)"
export SLURM_CONF

slurm_up() { bash "$SLURM_SH" status >/dev/null 2>&1; }
slurm_version() { dpkg-query -W -f='${Version}' slurm-client 2>/dev/null; }
# The wrappers are unpacked, and from the same version as the installed Slurm
# (they use its Perl API).
wrappers_ok() {
    [[ -x $BIN/qsub && -x $BIN/qstat && -x $BIN/qdel && -e $BIN/sbatch && -e $BIN/srun ]] &&
        [[ $(cat "$TB_STATE/version" 2>/dev/null) == "$(slurm_version)" ]]
}
is_up() { [[ -e $UP_MARK ]] && wrappers_ok && slurm_up; }

unpack_wrappers() {
    wrappers_ok && return 0
    local deb=$TB_STATE/deb version
    version=$(slurm_version)
    rm -rf "$deb" "$ROOT" "$TB_STATE/version"
    mkdir -p "$deb"
    log "apt-get download slurm-wlm-torque=$version"
    if ! (cd "$deb" && timeout "$TB_APT_TIMEOUT" apt-get download -q "slurm-wlm-torque=$version" >>"$TB_DIR/apt.log" 2>&1); then
        apt_update
        (cd "$deb" && timeout "$TB_APT_TIMEOUT" apt-get download -q "slurm-wlm-torque=$version" >>"$TB_DIR/apt.log" 2>&1) ||
            { show_logs "$TB_DIR/apt.log"; die "apt-get download slurm-wlm-torque failed"; }
    fi
    dpkg-deb -x "$deb"/slurm-wlm-torque_*.deb "$ROOT"
    # qsub runs sbatch (and srun) from its own directory, not from PATH.
    local tool
    for tool in sbatch srun; do
        ln -sfn "$(command -v "$tool")" "$BIN/$tool"
    done
    echo "$version" >"$TB_STATE/version"
    wrappers_ok || die "unpacked slurm-wlm-torque lacks the expected commands in $BIN"
}

smoke_job() {
    local script=$TB_STATE/smoke.pbs jid
    cat >"$script" <<'EOF'
#!/bin/bash
#PBS -N caf-hpc-smoke
#PBS -l walltime=00:01:00
#PBS -l select=1:ncpus=1:mpiprocs=1:mem=100mb
true
EOF
    jid=$(cd "$TB_STATE" && PATH=$BIN:$PATH timeout 30 qsub -o /dev/null -e /dev/null "$script") ||
        { log "qsub failed"; return 1; }
    jid=${jid%%.*}
    [[ $jid =~ ^[0-9]+$ ]] || { log "qsub printed no job id: $jid"; return 1; }
    wait_until 60 pbs_job_gone "$jid" || { log "smoke job $jid did not finish in 60 s"; return 1; }
}
pbs_job_gone() { [[ -z $(timeout 20 squeue -h -j "$1" -o %i 2>/dev/null) ]]; }

cmd_up() {
    if is_up; then
        log "already up"
        return 0
    fi
    local t0; t0=$(now_ms)
    if ! slurm_up; then
        bash "$SLURM_SH" up
        touch "$STARTED_SLURM"
    fi
    apt_install libslurm-perl libslurmdb-perl libswitch-perl
    unpack_wrappers
    smoke_job || die "smoke job through qsub failed"
    touch "$UP_MARK"
    log "up in $(since "$t0") s: PBS commands in $BIN"
}

cmd_down() {
    rm -f "$UP_MARK"
    if [[ -e $STARTED_SLURM ]]; then
        bash "$SLURM_SH" down
        rm -f "$STARTED_SLURM"
    fi
    log "down"
}

cmd_status() {
    if is_up; then
        echo "pbs: up (commands in $BIN, over slurm)"
        exit 0
    fi
    echo "pbs: down"
    exit 3
}

cmd_env() {
    bash "$SLURM_SH" env
    # $PATH stays unexpanded: it is the PATH of whoever evals this line.
    # shellcheck disable=SC2016
    printf 'export PATH=%q:"$PATH"\n' "$BIN"
}

tb_main "$@"
