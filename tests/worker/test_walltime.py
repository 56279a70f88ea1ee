"""The worker side of walltime: when its job ends, the walltime formats, the drain on a real Dask cluster."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from distributed import Client, LocalCluster

from caf_hpc.sites import schedulers
from caf_hpc.worker import walltime
from caf_hpc.worker.walltime import METADATA_KEY, WalltimePlugin


@pytest.mark.parametrize("scheduler, value, seconds", [
    ("slurm", "30", 1800), ("slurm", "1:30", 90), ("slurm", "01:00:00", 3600), ("slurm", "2-12", 216000),
    ("slurm", "1-00:30", 88200), ("slurm", "1-00:00:05", 86405), ("slurm", "UNLIMITED", None),
    ("pbs", "01:30:00", 5400), ("pbs", "90:00", 5400), ("pbs", "5400", 5400),
    ("sge", "01:00:00", 3600), ("lsf", "01:30", 5400), ("lsf", "45", 2700), ("htcondor", "anything", None),
    ("local", "anything", None),
])
def test_each_scheduler_reads_its_own_walltime_format(scheduler, value, seconds):
    assert schedulers.get(scheduler).walltime_seconds(value) == seconds


def test_every_scheduler_with_a_walltime_format_reads_its_own_example():
    for scheduler in schedulers.all_schedulers():
        if scheduler.walltime is not None:
            assert scheduler.walltime_seconds(scheduler.walltime.example) == 3600, scheduler.name


def test_slurm_says_the_time_left_from_its_end_time_variable():
    left = schedulers.get("slurm").job_time_left({"SLURM_JOB_END_TIME": str(int(time.time()) + 500)})
    assert 498 <= left <= 500
    assert schedulers.get("slurm").job_time_left({}) is None


_PRINT_END = ("import json, sys; from caf_hpc.worker.walltime import job_end; "
              "e = job_end(sys.argv[1], 100.0); print(json.dumps([e.end, e.source]))")


def _end_in_a_job(variable: str, scheduler: str) -> tuple:
    """``job_end`` in a process started by a shell that has the job id, as a batch job's script has it."""
    script = f"sleep 1.5; {sys.executable} -c '{_PRINT_END}' {scheduler}"
    started = time.time()
    out = subprocess.run(["bash", "-c", script], env=dict(os.environ, **{variable: "4242"}), capture_output=True,
                         text=True, timeout=60, check=True)
    end, source = json.loads(out.stdout)
    return started, end, source


def test_without_the_batch_systems_word_the_job_starts_when_its_script_did():
    started, end, source = _end_in_a_job("JOB_ID", "sge")  # Grid Engine's id; no query for its time left
    assert source == "the job's start plus the site's walltime"
    assert abs(end - (started + 100)) < 1.0  # the shell's start, not the worker's 1.5 s later


def test_outside_any_job_the_workers_own_start_is_taken():
    end = walltime.job_end("sge", 100.0, environ={})
    assert end.source == "the worker's start plus the site's walltime"


@pytest.mark.timeout(90)
def test_a_worker_near_its_end_takes_no_new_work_and_leaves_once_idle():
    """A worker whose job ends 20 s after its start, with a margin of 8 s: at 12 s it drains; the task it runs
    finishes; the task sent later never starts there; it leaves as soon as it is idle."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(1, timeout=30)
        (address,) = client.scheduler_info()["workers"]
        client.register_plugin(WalltimePlugin("sge", walltime=20.0, margin=8.0))
        meta = client.get_metadata([METADATA_KEY, address])
        assert meta["source"] == "the worker's start plus the site's walltime" and meta["margin"] == 8.0
        drain_at = meta["end"] - 8.0
        assert drain_at > time.time() + 1, "the machine took over 11 s to start one worker"
        def across_the_drain() -> float:
            time.sleep(max(0.0, drain_at - time.time()) + 3)
            return time.time()

        long = client.submit(across_the_drain, pure=False)
        while time.time() < drain_at + 0.5:
            time.sleep(0.1)
        late = client.submit(lambda: time.time(), pure=False)
        finished = long.result(timeout=30)
        assert finished > drain_at  # the running task was not cut by the drain
        deadline = time.monotonic() + 20
        while client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        left_at = time.time()
        assert not client.scheduler_info()["workers"], "the drained worker did not leave once idle"
        assert left_at - finished < 5.0
        assert late.status == "pending"  # never started on the draining worker
        late.cancel()
