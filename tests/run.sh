#!/usr/bin/env bash
# The whole test suite on a fresh machine: creates the environment, installs the package
# with its test and root extras (real ROOT, for the C++ algorithms), runs `ruff check` and
# `mypy` as configured in pyproject.toml and fails if either complains, before anything is
# started; then starts what the batch tests submit to (single-node Slurm, PBS over Slurm,
# SGE, and Podman with a base image: Debian packages, so as root), installs Debian's
# Chromium for the report's browser test and g++ for building a C++ algorithm library with
# a ROOT dictionary, runs pytest, and stops again whatever it started. Extra arguments go
# to pytest.
#
# CAF_HPC_TESTBED=0 skips the batch systems (their tests then skip, saying how to start
# them); with the batch systems started here, a skipped batch test is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,root]'
export CAF_HPC_REQUIRE_ROOT=1   # installed: a skipped C++ test is a failure

# Lint and type checks first: they take seconds, the suite takes many minutes.
.venv/bin/ruff check
.venv/bin/mypy

started=()
stop_started() {
    if ((${#started[@]})); then
        .venv/bin/caf-hpc testbed down "${started[@]}" || true
    fi
}
trap stop_started EXIT

if [[ "${CAF_HPC_TESTBED:-1}" != 0 && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    for name in slurm pbs sge podman; do
        if ! .venv/bin/caf-hpc testbed status "$name" >/dev/null 2>&1; then
            started+=("$name")
        fi
    done
    .venv/bin/caf-hpc testbed up slurm pbs sge podman
    export CAF_HPC_REQUIRE_BATCH=1
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
    fi
    export CAF_HPC_REQUIRE_BROWSER=1   # installed: a skipped browser test is a failure
    if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++ >/dev/null
    fi
    export CAF_HPC_REQUIRE_COMPILER=1  # installed: the test of a C++ algorithm library cannot skip
fi

.venv/bin/python -m pytest "$@"
