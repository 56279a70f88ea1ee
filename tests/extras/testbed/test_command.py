"""`caf-hpc testbed status` tells up from down by its exit code, as scripts need."""
from __future__ import annotations

from caf_hpc.extras import testbed
from caf_hpc.cli import main
from caf_hpc.extras.testbed.command import STATUS_DOWN


def test_status_exit_code_says_whether_every_named_system_is_up(capsys):
    expected = 0 if testbed.is_up("slurm") else STATUS_DOWN
    assert main(["testbed", "status", "slurm"]) == expected
    assert capsys.readouterr().out.strip() in ("slurm: up", "slurm: down")
