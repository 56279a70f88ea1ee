"""The local cluster ends with its steering process, also when that is killed (SIGKILL) while the cluster starts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.processes import left_running, new_mark

REPO = Path(__file__).resolve().parents[2]

STEERING = """
import sys, time
sys.path.insert(0, {repo!r})
from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.steering import clusters

clusters.client_for(DaskAlgorithmsRunner.settings())
print("STARTED", flush=True)
time.sleep(120)
"""


def _scheduler_started(steering: subprocess.Popen) -> bool:
    try:
        return any("distributed.Scheduler" in " ".join(child.cmdline())
                   for child in psutil.Process(steering.pid).children())
    except psutil.Error:
        return False


@pytest.mark.parametrize("moment", ["while its scheduler starts", "once the cluster runs"])
def test_a_killed_steering_process_leaves_no_process_of_its_cluster(tmp_path, moment):
    """Killed while its scheduler was still importing, the scheduler's guard had taken init for the
    parent to watch, and the scheduler ran on for good. The workers end 10 s (death_timeout) after
    their scheduler."""
    script = tmp_path / "steering.py"
    script.write_text(STEERING.format(repo=str(REPO)))
    variable, mark = new_mark()
    env = dict(os.environ, CAF_HPC_WORKERS="1", **{variable: mark})
    steering = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        if moment == "while its scheduler starts":
            while not _scheduler_started(steering):
                assert time.monotonic() < deadline and steering.poll() is None
                time.sleep(0.002)
        else:
            assert steering.stdout.readline().strip() == "STARTED"
        steering.kill()
        steering.wait(timeout=10)
        assert left_running(mark, seconds=30) == []
    finally:
        if steering.poll() is None:
            steering.kill()
            steering.wait(timeout=10)
        for pid in left_running(mark, seconds=0):
            os.kill(pid, signal.SIGKILL)
