"""A testbed script that fails says why in the error's first line: its last ERROR line, the script, the exit code;
its other output follows only when there is any besides its own progress lines."""
from __future__ import annotations

import subprocess

import pytest

from caf_hpc.extras import testbed
from caf_hpc.extras.testbed import TestbedError

pytestmark = pytest.mark.timeout(60)


def _failed(stderr: str) -> subprocess.CompletedProcess[str]:
    """What a failing script leaves: its stderr as the scripts write it, and exit code 1."""
    return subprocess.run(["bash", "-c", 'printf "%s" "$1" >&2; exit 1', "-", stderr], capture_output=True,
                          text=True, timeout=30)


def test_the_last_error_line_leads_and_alone_needs_no_tail():
    proc = _failed("[slurm 12:00:01] starting slurmctld\n[slurm 12:00:02] ERROR: port 6817 is taken\n")
    with pytest.raises(TestbedError) as raised:
        testbed._check("slurm", "up", proc)
    assert str(raised.value).splitlines() == [
        f"slurm up: port 6817 is taken (`bash {testbed.script('slurm')} up`, exit code 1)"]


def test_other_output_beside_the_error_follows_as_the_tail():
    proc = _failed("[sge 12:00:01] ERROR: an earlier cause\napt-get said something\n[sge 12:00:02] ERROR: the cause\n")
    with pytest.raises(TestbedError) as raised:
        testbed._check("sge", "up", proc)
    first, *tail = str(raised.value).splitlines()
    assert first.startswith("sge up: the cause (`bash ")
    assert "apt-get said something" in tail and "[sge 12:00:01] ERROR: an earlier cause" in tail


def test_without_an_error_line_the_exit_code_and_the_tail():
    with pytest.raises(TestbedError, match=r"failed with exit code 1\nsomething broke"):
        testbed._check("pbs", "down", _failed("something broke\n"))
