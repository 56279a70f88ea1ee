"""`caf-hpc testbed status` tells up from down by its exit code, as scripts need.

Up and down are judged here without the testbed's own ``is_up``: a system is down when the
testbed directory holds none of its daemons (an empty ``CAF_HPC_TESTBED_DIR``), and the
running Slurm is up when Slurm itself answers (``scontrol ping``). A directory whose
``slurm`` is the running testbed's and whose ``sge`` is empty gives one of each, so that
"every named system" is tried with one up and one down, without touching the shared daemons.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from caf_hpc.cli import main
from caf_hpc.extras import testbed
from caf_hpc.extras.testbed.command import STATUS_DOWN
from tests.helpers.requirements import require_testbed

pytestmark = pytest.mark.timeout(120)

TESTBED_DIR = Path(os.environ.get("CAF_HPC_TESTBED_DIR", "/var/tmp/caf-hpc-testbed"))


def _slurm_answers(environment: dict) -> bool:
    """Slurm's own word, not the testbed's: its controller answers a ping."""
    ping = subprocess.run(["scontrol", "ping"], env={**os.environ, **environment}, capture_output=True, text=True,
                          timeout=30, check=False)
    return ping.returncode == 0 and " is UP" in ping.stdout


@pytest.fixture
def slurm_up_sge_down(tmp_path, monkeypatch):
    """A testbed directory where Slurm is the running one and SGE was never started."""
    environment = require_testbed("slurm")
    assert _slurm_answers(environment), "the slurm testbed says it is up but scontrol ping does not answer"
    (tmp_path / "slurm").symlink_to(TESTBED_DIR / "slurm")
    (tmp_path / "sge").mkdir()
    monkeypatch.setenv("CAF_HPC_TESTBED_DIR", str(tmp_path))


def _status(capsys, *names: str) -> tuple:
    code = main(["testbed", "status", *names])
    return code, capsys.readouterr().out.splitlines()


def test_status_of_a_system_that_answers_is_up_exit_0(slurm_up_sge_down, capsys):
    assert _status(capsys, "slurm") == (0, ["slurm: up"])


def test_status_of_a_system_never_started_is_down_exit_3(slurm_up_sge_down, capsys):
    assert _status(capsys, "sge") == (STATUS_DOWN, ["sge: down"])


def test_status_is_down_when_any_named_system_is_down(slurm_up_sge_down, capsys):
    assert _status(capsys, "slurm", "sge") == (STATUS_DOWN, ["slurm: up", "sge: down"])


def test_status_of_nothing_started_is_down_for_each(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAF_HPC_TESTBED_DIR", str(tmp_path))
    assert _status(capsys, "slurm", "pbs", "sge") == (STATUS_DOWN, ["slurm: down", "pbs: down", "sge: down"])


#: Runs in a network and mount namespace of its own (``unshare``): its ports are not the machine's, so
#: the machine's own testbed Slurm (on 6817/6818) is neither reached nor in the way, and /etc/slurm is a
#: directory of the test's, so that no slurm.conf of the machine is rewritten. A python socket holds
#: slurmctld's default port there, standing in for another Slurm; then the testbed is started.
_SANDBOX = r"""
set -u
ip link set lo up
# Slurm finds no address to listen on with loopback alone: a veth pair gives it one.
ip link add cafhpc0 type veth peer name cafhpc1 && ip addr add 10.251.0.1/24 dev cafhpc0 \
    && ip link set cafhpc0 up && ip link set cafhpc1 up
mkdir -p /etc/slurm && mount --bind "$ETC_SLURM" /etc/slurm
"$PYTHON" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 6817)); s.listen()
print("holding", flush=True); time.sleep(300)' > "$HOLDER_OUT" &
holder=$!
trap '"$PYTHON" -m caf_hpc.cli testbed down slurm >/dev/null 2>&1; kill $holder' EXIT
for _ in $(seq 100); do grep -q holding "$HOLDER_OUT" && break; sleep 0.1; done
"$PYTHON" -m caf_hpc.cli testbed up slurm 2>"$ERR_OUT"; echo "exit $?"
if [[ -n ${TRY_PORTS:-} ]]; then
    CAF_HPC_TESTBED_SLURMCTLD_PORT=6917 CAF_HPC_TESTBED_SLURMD_PORT=6918 "$PYTHON" -m caf_hpc.cli testbed up slurm
    echo "exit $?"
    CAF_HPC_TESTBED_SLURMCTLD_PORT=6917 CAF_HPC_TESTBED_SLURMD_PORT=6918 "$PYTHON" -m caf_hpc.cli testbed status slurm
fi
"""


def _sandbox(tmp_path, try_ports: bool = False):
    """(stdout, stderr of the first `testbed up slurm`) of ``_SANDBOX``; skips where it cannot run."""
    import os
    import shutil
    import subprocess
    import sys

    import pytest

    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "ip", "slurmctld", "slurmd")):
        pytest.skip("needs root, unshare, ip and Slurm's daemons (caf-hpc testbed up slurm installs them)")
    if subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, timeout=30).returncode:
        pytest.skip("unshare --net --mount is not allowed here")
    (tmp_path / "etc-slurm").mkdir()
    env = dict(os.environ, CAF_HPC_TESTBED_DIR=str(tmp_path / "testbed"), ETC_SLURM=str(tmp_path / "etc-slurm"),
               PYTHON=sys.executable, HOLDER_OUT=str(tmp_path / "holder"), ERR_OUT=str(tmp_path / "err"),
               TRY_PORTS="1" if try_ports else "")
    for variable in ("CAF_HPC_TESTBED_SLURMCTLD_PORT", "CAF_HPC_TESTBED_SLURMD_PORT"):
        env.pop(variable, None)
    run = subprocess.run(["unshare", "--net", "--mount", "bash", "-c", _SANDBOX], env=env, capture_output=True,
                         text=True, timeout=150)
    return run.stdout, (tmp_path / "err").read_text()


def _machine_testbed():
    """What `status` says of the machine's own Slurm testbed: the test must leave it as it was."""
    return testbed.is_up("slurm"), open("/etc/slurm/slurm.conf").read() if testbed.is_up("slurm") else None


@pytest.mark.timeout(200)  # the sandbox's own bound is 150 s
def test_up_slurm_says_in_one_line_what_holds_its_port_and_the_way_out(tmp_path):
    before = _machine_testbed()
    out, err = _sandbox(tmp_path)
    assert out.splitlines()[0] == "exit 1", (out, err)
    assert len(err.splitlines()) == 1, err  # not 30 lines of Slurm's log
    assert err.startswith("caf-hpc testbed: slurm up: port 6817 (slurmctld's) is taken by python")
    assert "CAF_HPC_TESTBED_SLURMCTLD_PORT=6917 CAF_HPC_TESTBED_SLURMD_PORT=6918 caf-hpc testbed up slurm" in err
    assert not list((tmp_path / "etc-slurm").iterdir())  # nothing written, nothing started
    assert _machine_testbed() == before


@pytest.mark.timeout(200)
def test_up_slurm_on_ports_of_its_own_runs_beside_what_holds_the_default_ones(tmp_path):
    before = _machine_testbed()
    out, err = _sandbox(tmp_path, try_ports=True)
    assert out.splitlines()[:3] == ["exit 1", "slurm: up", "exit 0"], (out, err)
    assert out.splitlines()[3] == "slurm: up"
    assert "SlurmctldPort=6917" in (tmp_path / "testbed" / "slurm" / "slurm.conf").read_text()
    assert _machine_testbed() == before
