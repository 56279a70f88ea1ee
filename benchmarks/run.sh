#!/usr/bin/env bash
# The whole benchmark suite on a fresh machine: creates the environment, installs the package
# with its bench and root extras (matplotlib for the figure, real ROOT for the C++ strategy),
# and runs `python -m benchmarks`, which starts the testbed's Slurm and Podman when it runs as
# root (and stops them again). The report goes to benchmarks/results/<machine>/. Extra
# arguments go to the suite (`--quick`, `--no-batch`, `--only KEY,...`, `--out DIR`).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[bench,root]'
exec .venv/bin/python -m benchmarks "$@"
