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
from tests.helpers.requirements import require_testbed

from caf_hpc.cli import main
from caf_hpc.extras.testbed.command import STATUS_DOWN

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
