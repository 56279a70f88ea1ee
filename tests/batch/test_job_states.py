"""Asking the testbed's real Slurm, PBS and SGE which jobs wait and which run."""
from __future__ import annotations

import subprocess
import time

import pytest

from caf_hpc.sites import schedulers
from tests.helpers.requirements import require_testbed

pytestmark = [pytest.mark.batch, pytest.mark.timeout(120)]

#: system -> (submit a running sleep, submit a held one, cancel): each prints the job id somewhere
SUBMIT = {
    "slurm": (["sbatch", "--parsable", "-J", "caf-states", "--wrap", "sleep 60"],
              ["sbatch", "--parsable", "-H", "-J", "caf-states", "--wrap", "sleep 60"], ["scancel"]),
    "pbs": (["qsub", "-N", "caf-states"], ["qsub", "-h", "-N", "caf-states"], ["qdel"]),
    "sge": (["qsub", "-terse", "-cwd", "-b", "y", "-N", "caf-states", "sleep", "60"],
            ["qsub", "-terse", "-cwd", "-h", "-b", "y", "-N", "caf-states", "sleep", "60"], ["qdel"]),
}


def _submit(command: list, environment: dict, script) -> str:
    script.write_text("#!/bin/sh\nsleep 60\n")
    if command[0] == "qsub" and "-b" not in command:
        command = [*command, str(script)]  # PBS's qsub takes a script file
    # from the test's directory: the job's output files (slurm-<id>.out, <name>.o<id>) land there
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True, env=environment,
                          cwd=script.parent)
    return done.stdout.strip().split(".")[0].split(";")[0]


@pytest.mark.parametrize("system", list(SUBMIT))
def test_running_and_held_jobs_are_told_apart(system, monkeypatch, tmp_path):
    import os

    environment = dict(os.environ, **require_testbed(system))
    for key, value in require_testbed(system).items():
        monkeypatch.setenv(key, value)
    run, hold, cancel = SUBMIT[system]
    running, held = _submit(run, environment, tmp_path / "job.sh"), _submit(hold, environment, tmp_path / "job.sh")
    try:
        deadline = time.monotonic() + 60
        states = schedulers.get(system).job_states([running, held])
        while states.get(running) != "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            states = schedulers.get(system).job_states([running, held])
        assert states == {running: "running", held: "pending"}
        assert schedulers.get(system).jobs_summary([running, held, "999999"]) == \
            f"3 batch job(s) submitted ({running}, {held}, 999999): 1 pending, 1 running, 1 no longer queued"
    finally:
        subprocess.run([*cancel, running, held], capture_output=True, timeout=30, env=environment)


def test_a_scheduler_that_cannot_be_asked_claims_nothing():
    assert schedulers.get("htcondor").job_states(["1"]) is None
    assert schedulers.get("htcondor").jobs_summary(["1", "2"]) == "2 batch job(s) submitted (1, 2)"
