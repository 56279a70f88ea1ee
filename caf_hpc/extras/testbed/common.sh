# shellcheck shell=bash
# Helpers shared by slurm.sh, pbs.sh and sge.sh.  Sourced, never run.
#
# The caller sets TB_NAME (used in log lines and as the name of its own state
# directory) before sourcing this file.
#
# Rules every testbed script follows, because tests and CI run them unattended
# on machines where a hang or a stray daemon costs a whole run:
#   * every wait is bounded (wait_until, or `timeout` around a command that
#     could block);
#   * a daemon is started under setsid with its PID (and start time, so a
#     recycled PID is never mistaken for ours) recorded in a pid file, and is
#     stopped through that pid file only -- never by process name;
#   * human-readable progress goes to stderr, so that stdout stays clean for
#     `status` and `env`.

TB_NAME=${TB_NAME:-testbed}
TB_DIR=${CAF_HPC_TESTBED_DIR:-/var/tmp/caf-hpc-testbed}
# shellcheck disable=SC2034  # used by the sourcing scripts
TB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB_STATE=$TB_DIR/$TB_NAME
# Upper bound for one apt-get install/download (downloads can be slow on CI).
TB_APT_TIMEOUT=${CAF_HPC_TESTBED_APT_TIMEOUT:-600}

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

log() { printf '[%s %s] %s\n' "$TB_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Milliseconds since the epoch, without forking.
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# Seconds (one decimal) elapsed since a now_ms reading.
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }

# wait_until TIMEOUT_SECONDS COMMAND [ARG...]
# Runs COMMAND (output discarded) until it succeeds; 0 when it did, 1 when
# TIMEOUT_SECONDS ran out.  Starts polling fast (the daemons here come up in
# well under a second) and backs off to 0.5 s.  COMMAND must itself be bounded
# (wrap external commands that may block in `timeout`).
wait_until() {
    local limit=$1; shift
    local deadline=$(( $(now_ms) + limit * 1000 )) pause=0.05
    while true; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        (( $(now_ms) < deadline )) || return 1
        sleep "$pause"
        case $pause in 0.05) pause=0.1 ;; 0.1) pause=0.2 ;; *) pause=0.5 ;; esac
    done
}

# Each `up` starts with empty logs (the previous ones are kept in log.prev),
# so that what a failed start shows is about that start.
rotate_logs() {
    rm -rf "$TB_STATE/log.prev"
    [[ ! -d $TB_STATE/log ]] || mv "$TB_STATE/log" "$TB_STATE/log.prev"
    mkdir -p "$TB_STATE/log"
}

# wait_for TIMEOUT NAME COMMAND [ARG...]: wait_until COMMAND succeeds, but
# give up at once if the daemon NAME (see start_daemon) has exited.
wait_for() {
    local limit=$1 name=$2; shift 2
    wait_until "$limit" _ready_or_dead "$name" "$@" && pid_alive "$name"
}
_ready_or_dead() { local name=$1; shift; ! pid_alive "$name" || "$@"; }

# Print the last lines of each readable log file given, to stderr.
show_logs() {
    local f
    for f in "$@"; do
        [[ -r $f ]] || continue
        log "---- last lines of $f ----"
        tail -n 25 "$f" >&2 || true
    done
}

# ---------------------------------------------------------------- processes

pid_file() { echo "$TB_STATE/$1.pid"; }

# Start time (clock ticks since boot) of a PID: field 22 of /proc/PID/stat,
# counted after the ")" that closes the command name (which may hold spaces).
proc_start_time() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -ra fields <<<"${stat##*) }"
    echo "${fields[19]}"
}

# recorded_pid NAME: the PID in NAME's pid file if that very process still
# runs (same start time, not a zombie); fails otherwise.
recorded_pid() {
    local f pid start state
    f=$(pid_file "$1")
    [[ -r $f ]] || return 1
    read -r pid start <"$f" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(proc_start_time "$pid" 2>/dev/null) == "$start" ]] || return 1
    state=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=${state##*) }
    [[ ${state:0:1} != Z ]] || return 1
    echo "$pid"
}

pid_alive() { recorded_pid "$1" >/dev/null; }

# port_holder PORT: what listens on TCP PORT on this machine ("slurmctld, pid
# 2636: slurmctld -D ...", or "a process not visible here" when ss shows no
# owner); fails when nothing listens.  A daemon that cannot bind its port
# exits with a line buried in its log: saying so before it starts is clearer.
port_holder() {
    local port=$1 line pid name
    if command -v ss >/dev/null; then
        line=$(timeout 5 ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1) || true
    else   # /proc/net/tcp{,6}: local address ADDR:PORT in hex, state 0A = LISTEN
        line=$(awk -v p="$(printf ':%04X' "$port")" '$4 == "0A" && substr($2, length($2) - 4) == p' \
            /proc/net/tcp /proc/net/tcp6 2>/dev/null | head -n 1) || true
    fi
    [[ -n $line ]] || return 1
    if [[ $line =~ \(\(\"([^\"]*)\",pid=([0-9]+) ]]; then
        name=${BASH_REMATCH[1]} pid=${BASH_REMATCH[2]}
        echo "$name (pid $pid: $(tr '\0\n' '  ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100 | sed 's/ *$//'))"
    else
        echo "a process not visible here"
    fi
}

# free_port FROM: the first TCP port from FROM on that nothing listens on.
free_port() {
    local port=$1
    while port_holder "$port" >/dev/null; do port=$((port + 1)); done
    echo "$port"
}

# start_daemon NAME LOGFILE COMMAND [ARG...]
# Runs COMMAND (which must stay in the foreground) in a new session, detached
# from our stdin/stdout/stderr so callers capturing our output are not held
# open, and records its PID.  Without job control a background child is not a
# process-group leader, so setsid(1) calls setsid() and execs in place: $! is
# the daemon's own PID.
start_daemon() {
    local name=$1 logfile=$2; shift 2
    mkdir -p "$TB_STATE" "$(dirname "$logfile")"
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    local pid=$!
    echo "$pid $(proc_start_time "$pid")" >"$(pid_file "$name")"
    log "started $name (pid $pid)"
}

# stop_daemons TIMEOUT NAME...
# SIGTERM to every recorded, still-running daemon at once; after TIMEOUT
# seconds SIGKILL to whichever is left; then the pid files go.
stop_daemons() {
    local limit=$1; shift
    local name pid pids=()
    for name in "$@"; do
        if pid=$(recorded_pid "$name"); then
            log "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$name")
        fi
    done
    if ((${#pids[@]})) && ! wait_until "$limit" none_alive "${pids[@]}"; then
        for name in "${pids[@]}"; do
            if pid=$(recorded_pid "$name"); then
                log "$name (pid $pid) ignored SIGTERM for ${limit}s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        wait_until 10 none_alive "${pids[@]}" || die "could not stop: ${pids[*]}"
    fi
    for name in "$@"; do rm -f "$(pid_file "$name")"; done
}

none_alive() {
    local name
    for name in "$@"; do ! pid_alive "$name" || return 1; done
}

# ------------------------------------------------------------------ packages

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

TB_APT_UPDATED=0
apt_update() {
    ((TB_APT_UPDATED)) && return 0
    log "apt-get update"
    timeout "$TB_APT_TIMEOUT" apt-get update -q -o DPkg::Lock::Timeout=60 \
        >>"$TB_DIR/apt.log" 2>&1 || { show_logs "$TB_DIR/apt.log"; die "apt-get update failed"; }
    TB_APT_UPDATED=1
}

# apt_knows PKG...: do the package lists offer a version of every PKG?  (On a
# fresh machine they may be missing or too old.)  One apt-cache call: each
# takes a second or more.
apt_knows() {
    local n
    n=$(timeout 60 apt-cache policy "$@" 2>/dev/null |
        awk '/^  Candidate:/ && $2 != "(none)" {n++} END {print n + 0}')
    ((n == $#))
}

# Installing a package must never start its service: a daemon started by the
# package (with the distribution's config) would collide with ours.  Debian
# asks /usr/sbin/policy-rc.d; exit status 101 means "do not start".
TB_POLICY=/usr/sbin/policy-rc.d
TB_POLICY_SAVED=
policy_forbid_start() {
    if [[ -x $TB_POLICY ]] && { "$TB_POLICY" x start >/dev/null 2>&1; [[ $? == 101 ]]; }; then
        return 0
    fi
    if [[ -e $TB_POLICY ]]; then           # someone else's policy: swap it out for the install
        TB_POLICY_SAVED=$TB_DIR/policy-rc.d.saved
        cp -p "$TB_POLICY" "$TB_POLICY_SAVED"
    fi
    printf '#!/bin/sh\n# caf-hpc testbed: package installs must not start services\nexit 101\n' >"$TB_POLICY"
    chmod 755 "$TB_POLICY"
}
policy_restore() {
    if [[ -n $TB_POLICY_SAVED ]]; then
        cp -p "$TB_POLICY_SAVED" "$TB_POLICY" && rm -f "$TB_POLICY_SAVED"
        TB_POLICY_SAVED=
    fi
}

# apt_install PKG...: installs whichever of PKG is missing; `apt-get update`
# only when the lists do not know a package or an install from them fails.
apt_install() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    mkdir -p "$TB_DIR"
    apt_knows "${missing[@]}" || apt_update
    policy_forbid_start
    log "apt-get install ${missing[*]}"
    local t0 ok=0; t0=$(now_ms)
    if apt_get_install "${missing[@]}"; then
        ok=1
    elif ((!TB_APT_UPDATED)); then
        apt_update
        apt_get_install "${missing[@]}" && ok=1
    fi
    policy_restore
    ((ok)) || { show_logs "$TB_DIR/apt.log"; die "apt-get install ${missing[*]} failed"; }
    log "installed in $(since "$t0") s"
}
apt_get_install() {
    timeout "$TB_APT_TIMEOUT" apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confold "$@" \
        >>"$TB_DIR/apt.log" 2>&1
}

# ------------------------------------------------------------------ commands

# main "$@": dispatch up|down|status|env to functions cmd_up, cmd_down, ...
# status exits 0 when up, 3 when down (the LSB convention for "not running").
tb_main() {
    local action=${1:-}
    case $action in
        up | down | status | env) ;;
        *) echo "usage: $(basename "$0") up|down|status|env" >&2; exit 2 ;;
    esac
    [[ $action == env ]] || [[ $EUID == 0 ]] || die "must run as root (installs packages, starts daemons)"
    mkdir -p "$TB_STATE"
    "cmd_$action"
}
