"""Losing workers on the real Slurm: cancelled and hung jobs, replacement, waiting in vain, Ctrl-C."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from caf_hpc.basf2_compat import RunnerError
from caf_hpc.extras.standins.utils import IoV, IoV_Result
from tests.helpers.batch_queues import jobs_named, wait_until_no_jobs
from tests.helpers.requirements import require_testbed
from tests.helpers.scripted import ok, scripted

pytestmark = [pytest.mark.batch, pytest.mark.timeout(180)]



@pytest.fixture
def slurm(slurm_runners):
    """A Slurm cluster of this test's own (named after it), closed afterwards with no job left."""
    return lambda jobs=2, **settings: slurm_runners(jobs, **settings)


def _cancelling(tmp_path, name="Cancelled"):
    return scripted(name, ("results", 3), ("cancel_own_job_once", str(tmp_path / "cancelled"), "SLURM_JOB_ID",
                                           "scancel"), ("results", 2), ("final", "COMPLETED"))


def _five_results():
    return [IoV_Result(IoV(1, i, 1, i), 0) for i in range(3)] + [IoV_Result(IoV(1, i, 1, i), 0) for i in range(2)]


def test_cancelled_job_mid_strategy_reruns_it_on_another_worker(slurm, calibrate, tmp_path):
    outcome = calibrate([_cancelling(tmp_path), ok("Next")], runner=slurm(retries=1))
    assert outcome.final_state == "COMPLETED", outcome.error
    assert outcome.results["Cancelled"] == _five_results()  # the lost attempt's three are gone
    assert "cancelling batch job" in (outcome.output_dir / "Cancelled_stdout").read_text()


def test_cancelled_job_without_retries_is_reported_as_infrastructure_failure(slurm, calibrate, tmp_path):
    outcome = calibrate([_cancelling(tmp_path), ok("Next")], runner=slurm(retries=0))
    assert isinstance(outcome.error, RunnerError)
    message = str(outcome.error)
    assert "lost its worker 1 time(s)" in message and "failure of the cluster, not of the algorithm" in message
    assert "batch job " in message and "job logs in " in message and "localhost-slurm" in message
    assert list(outcome.results) == ["Cancelled"]


def test_lost_job_is_replaced_so_the_strategy_finds_a_worker(slurm, calibrate, tmp_path):
    outcome = calibrate([_cancelling(tmp_path), ok("Next")], runner=slurm(jobs=1, retries=1))
    assert outcome.final_state == "COMPLETED", outcome.error
    assert outcome.results["Cancelled"] == _five_results()
    assert len(outcome.results["Next"]) == 1


def test_hung_worker_is_noticed_within_the_worker_ttl(slurm, calibrate, tmp_path):
    runner = slurm(retries=1, cluster={"scheduler_options": {"worker_ttl": "4s"}})
    hanging = scripted("Hanging", ("results", 1), ("signal_worker_once", str(tmp_path / "stopped"), "SIGSTOP"),
                       ("final", "COMPLETED"))
    calibrate([ok("WarmUp")], runner=runner)  # the workers are up: time only the hang
    started = time.monotonic()
    outcome = calibrate([hanging], runner=runner)
    elapsed = time.monotonic() - started
    assert outcome.final_state == "COMPLETED", outcome.error
    assert outcome.results["Hanging"] == [IoV_Result(IoV(1, 0, 1, 0), 0)]
    assert elapsed < 4 + 20, f"noticed after {elapsed:.1f} s"  # Dask's default TTL would take 300 s


class _Lines(logging.Handler):
    """The runner's log lines, caught on its own logger (here pytest's capture handlers on the root
    were found at level ERROR once the batch cluster had started)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_no_worker_arriving_in_time_is_a_clear_error(slurm, calibrate, tmp_path, monkeypatch, request):
    lines = _Lines()
    logger = logging.getLogger("caf_hpc")
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, lines])
    request.addfinalizer(lambda level=logger.level: logger.setLevel(level))
    logger.setLevel(logging.INFO)  # through setLevel, which also clears the logger's cache of what it shows
    runner = slurm(jobs=1, retries=1, worker_wait=5)
    calibrate([ok("WarmUp")], runner=runner)
    subprocess.run(["scontrol", "update", "PartitionName=debug", "State=DOWN"], check=True, timeout=30)
    try:
        outcome = calibrate([_cancelling(tmp_path)], runner=runner)
    finally:
        subprocess.run(["scontrol", "update", "PartitionName=debug", "State=UP"], check=True, timeout=30)
    assert isinstance(outcome.error, RunnerError)
    message = str(outcome.error)
    assert "found no worker to run it within 5 s (worker_wait)" in message
    assert "site 'localhost-slurm" in message and "queue debug" in message and "job logs in " in message
    waiting = [line for line in lines.lines if " waiting " in line]
    assert any("0 worker(s) connected" in line and "batch job(s) submitted" in line and ": 1 pending" in line
               for line in waiting), lines.lines  # the replacement job waits in the queue of the partition that is down


STEERING = """
import pathlib, sys
sys.path.insert(0, {root!r})  # the repository: the tests package
from tests.helpers.scripted import scripted
from caf_hpc import runner_for
from caf_hpc.extras.standins.driver import run_algorithms

runner = runner_for("localhost-slurm", cluster={{"job_name": {job_name!r}}}, scale={{"jobs": 1}})
algorithm = scripted("Long", ("record", {started!r}, "running"), ("sleep", 120), ("final", "COMPLETED"))
run_algorithms(runner, "slow", [algorithm], [], pathlib.Path("calibration"))
"""


def _submitting(process, job_name: str) -> bool:
    """An ``sbatch`` of a worker job runs (not the dry run's ``--test-only``), or its job is queued already."""
    import psutil

    try:
        children = psutil.Process(process.pid).children()
        if any(child.name() == "sbatch" and "--test-only" not in child.cmdline() for child in children):
            return True
    except psutil.Error:
        return False
    return bool(jobs_named("slurm", job_name))


@pytest.mark.parametrize("moment", ["strategy running", "job being submitted"])
def test_ctrl_c_at_a_terminal_is_one_line_and_leaves_no_job_behind(tmp_path, moment):
    """Ctrl-C as a terminal sends it, to the whole process group, which holds the batch commands that
    dask-jobqueue runs (a submission cut by it failed with tracebacks, and could leave a job no one
    cancels). The bound is honest for a batch site: the jobs are cancelled and their workers waited
    for (at most clusters.CANCEL_WAIT); on this machine it takes about 0.5 s."""
    from tests.helpers.processes import ctrl_c_noise, ctrl_c_when_ready, left_running, new_mark

    variable, mark = new_mark()
    env = dict(os.environ, **require_testbed("slurm"), HOME=str(tmp_path / "home"), **{variable: mark})
    job_name = f"caf-ctrl-c-{mark[:8]}"
    started = tmp_path / "started"
    script = tmp_path / "steering.py"
    script.write_text(textwrap.dedent(STEERING.format(root=str(Path(__file__).resolve().parents[2]), job_name=job_name,
                                                      started=str(started))))
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    ready = started.exists if moment == "strategy running" else lambda: _submitting(process, job_name)
    _, stderr, took = ctrl_c_when_ready(process, ready, seconds=90)
    assert process.returncode == -signal.SIGINT, stderr  # ended by SIGINT, as Python ends: 130 in a shell
    said = [line for line in stderr.splitlines() if "interrupted (Ctrl-C)" in line]
    assert len(said) == 1 and said[0].startswith("caf-hpc: interrupted (Ctrl-C); stopped calibration slow"), \
        stderr
    assert ctrl_c_noise(stderr) == [], stderr
    assert took < 15, f"took {took:.1f} s"
    assert wait_until_no_jobs("slurm", job_name, seconds=5) == []
    assert left_running(mark, seconds=5) == []  # the steering process's, and the jobs' (Slurm passes the mark on)
