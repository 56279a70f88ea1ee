#!/usr/bin/env bash
# Podman on this machine, for worker containers: the runtime and a local base image.
#
#   up      install podman, buildah, runc and debootstrap where missing, write the
#           containers.conf this kind of machine needs, and make the base image
#           localhost/caf-hpc-base:bookworm (Debian bookworm with python3 and venv,
#           made by debootstrap: no image registry is reachable here) unless it exists.
#   down    stop and remove the containers of the caf-hpc images still running
#           (a worker container whose job was killed hard); the base image stays.
#   status  exit 0 when podman runs containers and the base image exists, 3 when not.
#   env     print `export CONTAINERS_CONF=...` for `eval "$(podman.sh env)"`; batch
#           jobs inherit it from the process that submits them.
#
# Podman needs no daemon. Its settings here (runc, cgroupfs, ulimits within this
# machine's hard limits) are in a containers.conf of our own, never the system's.
set -euo pipefail
TB_NAME=podman
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONF=$TB_STATE/containers.conf
BASE_IMAGE=${CAF_HPC_BASE_IMAGE:-localhost/caf-hpc-base:bookworm}
#: The images whose containers `down` may stop: caf-hpc's own.
OWN_IMAGES=("localhost/caf-hpc")

pm() { CONTAINERS_CONF=$CONF timeout 120 podman "$@"; }   # a podman call that cannot hang

write_conf() {
    mkdir -p "$TB_STATE"
    cat >"$CONF" <<'EOF'
# caf-hpc testbed: podman as root on a machine without systemd and with low ulimits
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
}

base_exists() { pm image exists "$BASE_IMAGE"; }
runs_containers() { pm run --rm --network host "$BASE_IMAGE" true; }
is_up() { [[ -r $CONF ]] && base_exists && runs_containers; }

make_base() {
    local root=$TB_STATE/rootfs t0
    t0=$(now_ms)
    rm -rf "$root"
    log "debootstrap bookworm with python3 into $root"
    timeout 600 debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" \
        >"$TB_STATE/log/debootstrap.log" 2>&1 || { show_logs "$TB_STATE/log/debootstrap.log"; die "debootstrap failed"; }
    # what an image does not need: package caches and lists, documentation, locales
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    tar -C "$root" -c . | pm import - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
    log "base image $BASE_IMAGE made in $(since "$t0") s"
}

cmd_up() {
    rotate_logs
    apt_install podman buildah runc debootstrap
    write_conf
    if base_exists; then
        log "base image $BASE_IMAGE exists (kept between runs; \`podman rmi $BASE_IMAGE\` to make it again)"
    else
        make_base
    fi
    wait_until 60 runs_containers || die "podman cannot run a container of $BASE_IMAGE"
    log "up"
}

own_containers() {
    local image
    for image in "${OWN_IMAGES[@]}"; do
        pm ps -q --filter "ancestor=$image" 2>/dev/null || true
    done | sort -u
}

cmd_down() {
    [[ -r $CONF ]] || { log "not set up"; return 0; }
    local ids
    ids=$(own_containers)
    if [[ -n $ids ]]; then
        log "stopping caf-hpc containers: $(echo "$ids" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        pm stop --time 10 $ids >/dev/null 2>&1 || true
        # shellcheck disable=SC2086
        pm rm --force $ids >/dev/null 2>&1 || true
    fi
    log "down (the base image stays)"
}

cmd_status() {
    if is_up; then
        echo "podman: up (CONTAINERS_CONF=$CONF, base image $BASE_IMAGE)"
        exit 0
    fi
    echo "podman: down"
    exit 3
}

cmd_env() {
    printf 'export CONTAINERS_CONF=%q\n' "$CONF"
}

tb_main "$@"
