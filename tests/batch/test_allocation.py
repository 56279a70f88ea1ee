"""Adaptive scaling on the testbed's Slurm: a whole calibration's jobs follow its demand, read from ``squeue``."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from benchmarks.allocation import JobCounter, Scenario, run, squeue_counts
from caf_hpc import runner_for
from caf_hpc.sites import allocation
from caf_hpc.steering import clusters
from caf_hpc.steering.progress import RECORD_FILE
from tests.helpers.batch_queues import wait_until_no_jobs
from tests.helpers.requirements import require_testbed

pytestmark = [pytest.mark.batch, pytest.mark.timeout(420)]


@pytest.fixture
def slurm_env(tmp_path, monkeypatch):
    for key, value in require_testbed("slurm").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_calibrations_jobs_go_up_for_its_collectors_down_to_its_strategies_and_to_the_minimum(slurm_env):
    """Two calibrations in CAF's threads, 6 collector subjobs each, then 2 strategies each one after another:
    up to maximum_jobs (4) for the 12 subjobs, down to the 2 jobs the two strategies need while they run, and
    down to minimum_jobs (0) once nothing waits, within idle_grace (4 s) and a margin. No strategy is cut."""
    scenario = Scenario(calibrations=2, subjobs=6, subjob_seconds=3, strategies=2, strategy_seconds=12, jobs=4,
                        idle_grace=4, heartbeat=0.5)
    ended: dict = {}

    def after(counter: JobCounter) -> None:
        ended["at"] = time.time() - counter.started
        deadline = time.monotonic() + scenario.idle_grace + 30
        while time.monotonic() < deadline and sum(counter.latest()) > 0:
            time.sleep(0.5)
        ended["left"] = sum(squeue_counts(counter.job_name))

    result = run("adaptive", slurm_env / "run", scenario, after=after)
    totals = [(t, running + pending) for t, running, pending in result.counts]
    peak = max(total for _, total in totals)
    assert peak == scenario.jobs, totals
    peak_at = next(t for t, total in totals if total == peak)
    during_strategies = [total for t, total in totals if peak_at < t < ended["at"]]
    assert scenario.calibrations in during_strategies, totals  # two strategies running: two jobs
    assert max(total for t, total in totals if t > peak_at + 25) <= scenario.calibrations, totals
    assert ended["left"] == 0, f"jobs left {scenario.idle_grace + 30:g} s after the run: {totals[-10:]}"
    for record in (slurm_env / "run").rglob(RECORD_FILE):
        for entry in json.loads(record.read_text())["strategies"]:
            assert [a["outcome"] for a in entry["attempts"]] == ["ended"], (record, entry)


def test_a_lost_job_of_an_adaptive_cluster_is_dropped_not_resubmitted(slurm_env):
    """An idle job (idle_grace not over yet) cancelled from outside: nothing waits, so no job takes its place
    (the keeper of fixed clusters would resubmit it, to sit idle); the next task gets a new job at once."""
    job_name = "caf-alloc-lost"
    runner = runner_for("localhost-slurm", cluster={"job_name": job_name},
                        scale={"maximum_jobs": 2, "idle_grace": 120})
    client = clusters.client_for(runner.settings())
    try:
        cluster = client.cluster
        assert allocation.adaptive_of(cluster) is not None
        client.submit(time.sleep, 0.1, pure=False).result(timeout=90)  # released at once: its worker idles
        ids = [str(job.job_id) for job in cluster.workers.values()]
        assert len(ids) == 1
        subprocess.run(["scancel", ids[0]], check=True, timeout=30)
        assert wait_until_no_jobs("slurm", job_name) == []
        time.sleep(5)  # ample for a replacement to be submitted
        assert squeue_counts(job_name) == (0, 0) and not cluster.worker_spec, "a job was submitted for no work"
        client.submit(time.sleep, 0.1, pure=False).result(timeout=90)
        assert [str(job.job_id) for job in cluster.workers.values()] != ids
    finally:
        clusters.close(runner.settings())
        assert wait_until_no_jobs("slurm", job_name) == []
