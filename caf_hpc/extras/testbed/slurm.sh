#!/usr/bin/env bash
# A real single-node Slurm on this machine, for tests and for trying caf-hpc
# on a laptop:  slurm.sh up | down | status | env
#
#   up      install the Debian packages if missing, write our own slurm.conf,
#           start munged + slurmctld + slurmd, and return only once a smoke
#           job has run (a freshly started slurmctld accepts jobs but does not
#           schedule anything for its first few seconds).
#   down    cancel every job, then stop the daemons this script started.
#   status  print up/down; exit 0 when up, 3 when down.
#   env     print `export ...` lines for `eval "$(slurm.sh env)"`.
#
# Everything (config, state, spool, logs, pid files) lives under
# $CAF_HPC_TESTBED_DIR/slurm (default /var/tmp/caf-hpc-testbed/slurm).
# slurmctld and slurmd listen on $CAF_HPC_TESTBED_SLURMCTLD_PORT and
# $CAF_HPC_TESTBED_SLURMD_PORT (default 6817 and 6818, Slurm's own); `up`
# refuses in one line when something else holds them.  Client
# commands run by other processes (dask-jobqueue's sbatch/squeue/scancel) find
# the config through /etc/slurm/slurm.conf, which we also write unless some
# other slurm.conf is already there; in that case SLURM_CONF must be exported
# (see `env`).
set -euo pipefail
TB_NAME=slurm
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONF=$TB_STATE/slurm.conf
ETC_CONF=/etc/slurm/slurm.conf
MARK="# Written by the caf-hpc testbed (caf_hpc/testbed/slurm.sh); it rewrites this file on each 'up'."
NODE=localhost
PARTITION=debug
# More single-core workers than the machine has cores must fit.
NODE_CPUS=${CAF_HPC_TESTBED_SLURM_CPUS:-8}
# Slurm's own default ports; another Slurm on this machine may hold them already.
CTLD_PORT=${CAF_HPC_TESTBED_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${CAF_HPC_TESTBED_SLURMD_PORT:-6818}
export SLURM_CONF=$CONF

sl() { timeout 20 "$@"; }   # a Slurm client call that cannot hang

ctld_up() { sl scontrol ping 2>/dev/null | grep -q ' is UP'; }
node_ready() { sl sinfo -h -N -n "$NODE" -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)$'; }
queue_empty() { [[ -z $(sl squeue -h -o %i 2>/dev/null) ]]; }
job_gone() { [[ -z $(sl squeue -h -j "$1" -o %i 2>/dev/null) ]]; }

# munged may already be run by the machine (then we use it and leave it be).
munge_ok() { timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; }

is_up() { pid_alive slurmctld && pid_alive slurmd && munge_ok && ctld_up; }

real_memory_mib() {
    local kb
    kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    echo $((kb * 9 / 10 / 1024))
}

write_conf() {
    mkdir -p "$TB_STATE"/{state,spool,log}
    cat >"$CONF" <<EOF
$MARK
# Single node, no cgroups (none are usable in a container), root everywhere.
ClusterName=cafhpc
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$TB_STATE/state
SlurmdSpoolDir=$TB_STATE/spool
SlurmctldPidFile=$TB_STATE/slurmctld.slurm-pid
SlurmdPidFile=$TB_STATE/slurmd.slurm-pid
SlurmctldLogFile=$TB_STATE/log/slurmctld.log
SlurmdLogFile=$TB_STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
# Trust the CPU count below rather than the hardware.
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# Start batch jobs at once instead of batching submissions.
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Gives 'sacct -c' (state, exit code, elapsed) without slurmdbd.
JobCompType=jobcomp/filetxt
JobCompLoc=$TB_STATE/log/jobcomp.txt
ReturnToService=2
# Cancelled jobs get SIGKILL 5 s after SIGTERM; finished jobs stay visible 60 s.
KillWait=5
MinJobAge=60
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$(real_memory_mib) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=1-00:00:00 State=UP
EOF
    # Plain `sbatch` from any process should reach this Slurm, so /etc gets a
    # copy -- unless a slurm.conf that is not ours is there, or the one of a
    # testbed in another directory that still runs.
    if [[ ! -e $ETC_CONF ]] || { head -n 1 "$ETC_CONF" | grep -qF "$MARK" && ! other_testbed_running; }; then
        mkdir -p "$(dirname "$ETC_CONF")"
        cp "$CONF" "$ETC_CONF"
    else
        log "WARNING: $ETC_CONF is not this testbed's and was left alone: export SLURM_CONF=$CONF (see '$0 env')"
    fi
}

# Does $ETC_CONF belong to a testbed in another directory whose slurmctld runs?
other_testbed_running() {
    local other
    other=$(sed -n 's|^StateSaveLocation=\(.*\)/state$|\1|p' "$ETC_CONF")
    [[ -n $other && $other != "$TB_STATE" ]] || return 1
    (TB_STATE=$other; pid_alive slurmctld)
}

# Nothing but this testbed may listen on its ports (its own leftovers are
# stopped before this): slurmctld or slurmd would exit with "Address already in
# use" in its log. One line says what is in the way and the way out.
check_ports() {
    local what port variable holder
    for what in slurmctld slurmd; do
        if [[ $what == slurmctld ]]; then port=$CTLD_PORT variable=CAF_HPC_TESTBED_SLURMCTLD_PORT
        else port=$SLURMD_PORT variable=CAF_HPC_TESTBED_SLURMD_PORT; fi
        holder=$(port_holder "$port") || continue
        die "port $port ($what's) is taken by $holder, not by this testbed: stop that, or give this" \
            "testbed other ports: $(port_advice)"
    done
}

port_advice() {
    local ctld slurmd
    ctld=$(free_port $((CTLD_PORT + 100)))
    slurmd=$(free_port $((ctld + 1)))
    echo "CAF_HPC_TESTBED_SLURMCTLD_PORT=$ctld CAF_HPC_TESTBED_SLURMD_PORT=$slurmd caf-hpc testbed up slurm"
}

start_munge() {
    if munge_ok; then
        pid_alive munged || log "using the munged already running on this machine"
        return 0
    fi
    [[ -s /etc/munge/munge.key ]] || {
        log "creating /etc/munge/munge.key"
        timeout 30 mungekey --create --keyfile=/etc/munge/munge.key
    }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
    # munged refuses to run as root; -F keeps it in the foreground so the PID
    # we record is the daemon's; --force takes over a stale socket (no munged
    # answered above).
    start_daemon munged "$TB_STATE/log/munged.out" \
        setpriv --reuid=munge --regid=munge --init-groups -- munged -F --force
    wait_until 15 munge_ok || die "munged did not answer in 15 s"
}

smoke_job() {
    local jid state
    jid=$(sl sbatch --parsable -p "$PARTITION" -t 1 -n 1 --mem=100M -J caf-hpc-smoke \
        -o /dev/null -e /dev/null --wrap true) || return 1
    # `sbatch --wait` polls with growing sleeps; polling squeue is faster.
    wait_until 60 job_gone "$jid" || { log "smoke job $jid did not finish in 60 s"; return 1; }
    state=$(sl scontrol -o show job "$jid" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)
    [[ -z $state || $state == JobState=COMPLETED ]] || { log "smoke job $jid: $state"; return 1; }
}

cmd_up() {
    if is_up; then
        # An explicit `up` claims Slurm for its caller: a later `pbs.sh down`
        # must then leave it running even if `pbs.sh up` had started it.
        rm -f "$TB_DIR/pbs/started-slurm"
        log "already up"
        return 0
    fi
    local t0; t0=$(now_ms)
    # Half-started leftovers (e.g. a daemon that died) are cleared first.
    stop_daemons 20 slurmd slurmctld
    check_ports
    rotate_logs
    trap up_failed EXIT
    apt_install slurmctld slurmd slurm-client munge
    write_conf
    start_munge
    # -c: start from a clean state (no jobs from an earlier run); -i: ignore
    # state files that cannot be recovered.
    start_daemon slurmctld "$TB_STATE/log/slurmctld.out" slurmctld -D -c -i -f "$CONF"
    wait_for 30 slurmctld ctld_up || die "slurmctld exited, or did not answer 'scontrol ping' in 30 s"
    # -N: our node is called localhost whatever this host's name is.
    start_daemon slurmd "$TB_STATE/log/slurmd.out" slurmd -D -N "$NODE" -f "$CONF"
    wait_for 30 slurmd node_ready || die "slurmd exited, or node $NODE not idle after 30 s"
    smoke_job || die "smoke job failed"
    trap - EXIT
    log "up in $(since "$t0") s (partition '$PARTITION', node '$NODE', $NODE_CPUS CPUs)"
}

# EXIT trap while `up` runs: on failure show the logs and stop what we started.
up_failed() {
    local rc=$?
    ((rc)) || return 0
    local taken
    taken=$(port_taken_in_logs)
    [[ -n $taken ]] || show_logs "$TB_STATE"/log/{munged.out,slurmctld.log,slurmctld.out,slurmd.log,slurmd.out}
    stop_daemons 20 slurmd slurmctld munged
    # Taken between check_ports and the start: the cause is that one line.
    [[ -z $taken ]] || log "ERROR: $taken (logs in $TB_STATE/log): stop what holds it, or give this testbed" \
        "other ports: $(port_advice)"
    exit "$rc"
}

# "slurmctld could not listen on port N, taken by ..." when a daemon's log says
# its port was in use; nothing otherwise.
port_taken_in_logs() {
    local what port holder
    for what in slurmctld slurmd; do
        grep -qs 'Address already in use' "$TB_STATE/log/$what.log" "$TB_STATE/log/$what.out" || continue
        if [[ $what == slurmctld ]]; then port=$CTLD_PORT; else port=$SLURMD_PORT; fi
        holder=$(port_holder "$port") || holder="something that has exited since"
        echo "$what could not listen on port $port (Address already in use), taken by $holder"
        return 0
    done
}

cmd_down() {
    if pid_alive slurmctld && ctld_up; then
        local jobs
        jobs=$(sl squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        if [[ -n ${jobs// /} ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            sl scancel $jobs 2>/dev/null || true
            # Jobs must end while slurmd still runs, or their processes linger.
            wait_until 30 queue_empty || log "WARNING: jobs still listed after 30 s: $(sl squeue -h -o %i | tr '\n' ' ')"
        fi
    fi
    stop_daemons 20 slurmd slurmctld munged
    log "down"
}

cmd_status() {
    if is_up; then
        echo "slurm: up (SLURM_CONF=$CONF)"
        exit 0
    fi
    local n parts=()
    for n in munged slurmctld slurmd; do pid_alive "$n" && parts+=("$n running"); done
    echo "slurm: down${parts:+ (${parts[*]})}"
    exit 3
}

cmd_env() {
    printf 'export SLURM_CONF=%q\n' "$CONF"
}

tb_main "$@"
