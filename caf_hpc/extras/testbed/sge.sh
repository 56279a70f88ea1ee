#!/usr/bin/env bash
# A real single-host Son of Grid Engine (Debian's gridengine packages) on this
# machine:  sge.sh up | down | status | env
#
#   up      install the packages if missing (answering their debconf
#           questions up front), start sge_qmaster, configure this host as
#           submit + exec host with queue all.q, hostgroup @allhosts and an
#           `smp` parallel environment, start sge_execd, and return only once
#           a smoke job has run.
#   down    delete every job, then stop the two daemons this script started.
#   status  exit 0 when up, 3 when down.
#   env     SGE_ROOT / SGE_CELL exports (the Debian commands are in /usr/bin).
#
# Grid Engine keeps its configuration and spool where Debian puts them
# (/var/lib/gridengine, /var/spool/gridengine); our pid files, daemon output
# and generated config snippets go to $CAF_HPC_TESTBED_DIR/sge.
set -euo pipefail
TB_NAME=sge
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
# One-core workers beyond the machine's cores must fit, as with Slurm.
SLOTS=${CAF_HPC_TESTBED_SGE_SLOTS:-8}
CFG=$TB_STATE/conf
PACKAGES=(gridengine-master gridengine-exec gridengine-client gridengine-common)

q() { timeout 20 "$@"; }   # a Grid Engine client call that cannot hang
# qconf reports each change on stderr; that chatter goes to a log file.
qc() { q qconf "$@" >>"$TB_STATE/log/qconf.out" 2>&1; }

# The name Grid Engine gives this host: the canonical name the resolver
# returns for `hostname` (not necessarily `hostname` itself).
sge_host() {
    local h c
    h=$(hostname)
    c=$(timeout 10 getent hosts "$h" | awk 'NR == 1 {print $2}') || true
    echo "${c:-$h}"
}
HOST=$(sge_host)

qmaster_ok() { q qconf -sh >/dev/null 2>&1; }
# all.q on this host reports load and has no state flag (u, a, d, E, ...).
queue_ok() {
    q qstat -f -q "all.q@$HOST" 2>/dev/null |
        awk -v qi="all.q@$HOST" '$1 == qi && NF == 5 { ok = 1 } END { exit !ok }'
}
no_jobs() { [[ -z $(q qstat -u '*' 2>/dev/null) ]]; }
is_up() { pid_alive qmaster && pid_alive execd && qmaster_ok; }

install_packages() {
    local p need=0
    for p in "${PACKAGES[@]}"; do pkg_installed "$p" || need=1; done
    ((need)) || return 0
    # Without these answers the packages would ask, or leave the cell
    # unconfigured.  Each package owns its copy of the shared questions.
    for p in "${PACKAGES[@]}"; do
        printf '%s shared/gridengineconfig boolean true\n' "$p"
        printf '%s shared/gridenginecell string %s\n' "$p" "$SGE_CELL"
        printf '%s shared/gridenginemaster string %s\n' "$p" "$HOST"
    done | timeout 60 debconf-set-selections
    apt_install "${PACKAGES[@]}"
}

# Point the cell at this host (it may have been configured under another
# name) and make connections from 127.0.0.1, which resolve to `localhost`,
# count as this host.
write_host_files() {
    [[ -d $COMMON && -e $COMMON/bootstrap ]] ||
        die "$COMMON/bootstrap missing: the gridengine packages were installed without configuring a cell (dpkg-reconfigure gridengine-master)"
    if [[ $HOST != localhost ]]; then
        printf '%s localhost\n' "$HOST" >"$COMMON/host_aliases"
    else
        rm -f "$COMMON/host_aliases"
    fi
    echo "$HOST" >"$COMMON/act_qmaster"
    chown sgeadmin:sgeadmin "$COMMON/host_aliases" "$COMMON/act_qmaster" 2>/dev/null || true
}

# put KIND NAME FILE: add the object from FILE, or modify it when it exists
# (kinds: e exec host, hgrp host group, p parallel env, q cluster queue).
put() {
    local kind=$1 name=$2 file=$3
    if q qconf -s"$kind" "$name" >/dev/null 2>&1; then
        qc -M"$kind" "$file"
    else
        qc -A"$kind" "$file"
    fi
}

# set_attrs FILE KEY VALUE [KEY VALUE...]: rewrite (or append) "KEY VALUE"
# lines of a Grid Engine object file.
set_attrs() {
    local file=$1; shift
    while (($#)); do
        if grep -q "^$1[[:space:]]" "$file"; then
            sed -i "s|^$1[[:space:]].*|$1 $2|" "$file"
        else
            echo "$1 $2" >>"$file"
        fi
        shift 2
    done
}

configure_master() {
    mkdir -p "$CFG"
    # Root's jobs are refused while min_uid/min_gid exceed 0; the execd reads
    # this when it starts, so it must be set before.  -Mconf takes the
    # configuration's name from the file name.
    q qconf -sconf global >"$CFG/global"
    set_attrs "$CFG/global" min_uid 0 min_gid 0
    qc -Mconf "$CFG/global"
    q qconf -sh 2>/dev/null | grep -xF "$HOST" >/dev/null || qc -ah "$HOST"
    q qconf -ss 2>/dev/null | grep -xF "$HOST" >/dev/null || qc -as "$HOST"
    cat >"$CFG/exechost" <<EOF
hostname $HOST
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
EOF
    put e "$HOST" "$CFG/exechost"
}

configure_queue() {
    printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$CFG/allhosts"
    put hgrp @allhosts "$CFG/allhosts"
    cat >"$CFG/smp" <<EOF
pe_name smp
slots 9999
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule \$pe_slots
control_slaves FALSE
job_is_first_task TRUE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
EOF
    put p smp "$CFG/smp"
    # The queue starts from Grid Engine's own template so that every
    # attribute is present. No load threshold: the template's np_load_avg=1.75
    # puts the queue in alarm (state a, nothing scheduled) whenever a busy
    # 2-core machine runs more than 3.5 runnable processes, as a test suite does.
    q qconf -sq >"$CFG/all.q"
    set_attrs "$CFG/all.q" qname all.q hostlist @allhosts pe_list smp slots "$SLOTS" \
        shell /bin/bash shell_start_mode unix_behavior load_thresholds NONE
    put q all.q "$CFG/all.q"
    # Scheduling runs every second instead of every 15 s.
    q qconf -ssconf >"$CFG/sched"
    set_attrs "$CFG/sched" schedule_interval 0:0:1
    qc -Msconf "$CFG/sched"
}

smoke_job() {
    # -sync y waits for the job and exits with its exit status.
    (cd "$TB_STATE" && timeout 60 qsub -sync y -b y -N caf-hpc-smoke -pe smp 1 -o /dev/null -e /dev/null /bin/true) \
        >>"$TB_STATE/log/smoke.out" 2>&1
}

cmd_up() {
    if is_up; then
        log "already up"
        return 0
    fi
    local t0; t0=$(now_ms)
    stop_daemons 40 execd qmaster
    rotate_logs
    trap up_failed EXIT
    install_packages
    write_host_files
    # SGE_ND: stay in the foreground, so the PID we record is the daemon's.
    start_daemon qmaster "$TB_STATE/log/qmaster.out" env SGE_ND=1 sge_qmaster
    wait_for 60 qmaster qmaster_ok || die "sge_qmaster exited, or did not answer in 60 s"
    configure_master
    start_daemon execd "$TB_STATE/log/execd.out" env SGE_ND=1 sge_execd
    configure_queue
    wait_for 60 execd queue_ok || die "sge_execd exited, or all.q@$HOST not ready after 60 s: $(q qstat -f 2>&1 | tail -n 3)"
    smoke_job || die "smoke job failed"
    trap - EXIT
    log "up in $(since "$t0") s (host '$HOST', queue all.q, pe smp, $SLOTS slots)"
}

# EXIT trap while `up` runs: on failure show the logs and stop what we started.
up_failed() {
    local rc=$?
    ((rc)) || return 0
    show_logs "$TB_STATE"/log/{qmaster.out,execd.out,qconf.out,smoke.out} \
        /var/spool/gridengine/qmaster/messages "/var/spool/gridengine/execd/$HOST/messages"
    stop_daemons 40 execd qmaster
    exit "$rc"
}

cmd_down() {
    if pid_alive qmaster && qmaster_ok && ! no_jobs; then
        log "deleting all jobs"
        q qdel -u '*' >/dev/null 2>&1 || true
        # Jobs must end while the execd still runs, or their processes linger.
        wait_until 30 no_jobs || {
            q qdel -f -u '*' >/dev/null 2>&1 || true
            wait_until 15 no_jobs || log "WARNING: jobs still listed: $(q qstat -u '*' 2>&1 | tail -n +3)"
        }
    fi
    # The qmaster takes several seconds to shut down.
    stop_daemons 40 execd qmaster
    log "down"
}

cmd_status() {
    if is_up; then
        echo "sge: up (SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL, host $HOST)"
        exit 0
    fi
    local n parts=()
    for n in qmaster execd; do pid_alive "$n" && parts+=("$n running"); done
    echo "sge: down${parts:+ (${parts[*]})}"
    exit 3
}

cmd_env() {
    printf 'export SGE_ROOT=%q\nexport SGE_CELL=%q\n' "$SGE_ROOT" "$SGE_CELL"
}

tb_main "$@"
