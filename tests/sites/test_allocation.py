"""Adaptive scaling of batch sites (``sites/allocation.py``) on a real dask-jobqueue cluster whose jobs are
local processes (dask-jobqueue's own ``LocalCluster``): the same cluster class, scheduler and ``Adaptive`` as on
Slurm, without a batch system. The same on the testbed's Slurm is in ``tests/batch/test_allocation.py``."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from distributed import Client

from caf_hpc import dask_adapter
from caf_hpc.sites import allocation
from caf_hpc.sites.build import apply_scale

pytestmark = pytest.mark.timeout(120)


def _local_job_cluster(**kwargs):
    dask_adapter.import_jobqueue()
    from dask_jobqueue.local import LocalCluster

    return LocalCluster(cores=kwargs.pop("cores", 1), processes=kwargs.pop("processes", 1), memory="500MB",
                        **kwargs)


@pytest.fixture
def job_cluster():
    cluster = _local_job_cluster()
    client = Client(cluster, set_as_default=False)
    yield cluster, client
    dask_adapter.stop_adaptive(cluster)
    client.close()
    cluster.close()


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(0.1)


def _workers(client) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def _note_and_sleep(path: str, seconds: float) -> str:
    """A long task of a kind the scheduler has never seen finish: notes each start, so that a re-run shows."""
    import os
    import time

    with open(path, "a") as notes:
        notes.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return path


def test_demand_counts_every_long_task_and_no_task_a_new_job_cannot_run(job_cluster, tmp_path):
    """Three long tasks of an unknown duration: Dask's own target (0.5 s each against its 5 s target duration)
    asks for one worker and two tasks would wait; here each gets a job at once, within maximum_jobs. A task that
    asks for a resource the site's workers lack, or for a named worker, starts no job."""
    cluster, client = job_cluster
    apply_scale(cluster, {"minimum_jobs": 0, "maximum_jobs": 4, "idle_grace": 30})
    futures = [client.submit(_note_and_sleep, str(tmp_path / f"t{i}"), 20, pure=False) for i in range(3)]
    client.submit(_note_and_sleep, str(tmp_path / "gpu"), 1, resources={"GPU": 1}, pure=False)
    client.submit(_note_and_sleep, str(tmp_path / "pinned"), 1, workers=["tcp://10.255.255.1:1"],
                  allow_other_workers=False, pure=False)
    _wait_for(lambda: len(cluster.worker_spec) > 0, 20, "a job submitted")
    assert len(cluster.worker_spec) == 3, "the first scale-up did not give each waiting task a job"
    _wait_for(lambda: _workers(client) >= 3, 60, "three workers for three waiting tasks")
    _wait_for(lambda: all(Path(tmp_path, f"t{i}").exists() for i in range(3)), 30, "all three tasks running")
    time.sleep(3)  # the restricted tasks, still waiting, must not bring more jobs
    assert len(cluster.worker_spec) == 3 and _workers(client) == 3
    for future in futures:
        future.cancel()


def test_idle_jobs_leave_after_the_grace_and_busy_ones_never(job_cluster, tmp_path):
    """Two short and one long task: the two idle jobs stay for idle_grace (8 s) and go soon after, while the
    long task runs on (it is never cut: it runs once); once its result is released the last job goes too, down
    to minimum_jobs 0."""
    cluster, client = job_cluster
    apply_scale(cluster, {"maximum_jobs": 3, "idle_grace": 8})
    long = client.submit(_note_and_sleep, str(tmp_path / "long"), 25, pure=False)
    short = [client.submit(_note_and_sleep, str(tmp_path / f"short{i}"), 1, pure=False) for i in range(2)]
    _wait_for(lambda: _workers(client) == 3, 60, "three workers")
    assert [future.result(timeout=30) for future in short]
    del short
    idle_since = time.monotonic()
    time.sleep(5)
    assert _workers(client) == 3, "idle jobs retired before their idle_grace"
    _wait_for(lambda: _workers(client) == 1, 12, "the two idle jobs retired soon after 8 s idle")
    assert time.monotonic() - idle_since >= 7
    assert not long.done()
    assert long.result(timeout=30)
    assert len(Path(tmp_path, "long").read_text().split()) == 1, "the long task ran more than once"
    time.sleep(10)  # longer than the grace: its result is still held, so its worker stays
    assert _workers(client) == 1 and long.result() == str(tmp_path / "long")
    del long
    _wait_for(lambda: _workers(client) == 0 and not cluster.worker_spec, 20, "no job once nothing is held")


def test_minimum_jobs_stay_when_nothing_waits(job_cluster):
    cluster, client = job_cluster
    apply_scale(cluster, {"minimum_jobs": 1, "maximum_jobs": 2, "idle_grace": 1})
    _wait_for(lambda: _workers(client) == 1, 60, "the minimum job")
    time.sleep(3)
    assert _workers(client) == 1 and len(cluster.worker_spec) == 1


def test_a_fixed_number_of_jobs_stays_fixed(job_cluster):
    cluster, client = job_cluster
    apply_scale(cluster, {"jobs": 2})
    _wait_for(lambda: _workers(client) == 2, 60, "two jobs")
    time.sleep(2)
    assert _workers(client) == 2 and dask_adapter.adaptive_of(cluster) is None


def test_the_adaptive_of_a_cluster_is_found_and_stopped(job_cluster):
    cluster, _ = job_cluster
    apply_scale(cluster, {"maximum_jobs": 2})
    adaptive = allocation.adaptive_of(cluster)
    assert isinstance(adaptive, allocation.DemandAdaptive) and dask_adapter.adaptive_of(cluster) is adaptive
    assert adaptive.wait_count == 60 and adaptive.maximum == 2 and adaptive.minimum == 0
    dask_adapter.stop_adaptive(cluster)
    assert allocation.adaptive_of(cluster) is None


def test_worker_threads_of_a_job_come_from_dask_jobqueue():
    cluster = _local_job_cluster(cores=4, processes=2)
    try:
        assert dask_adapter.job_worker_threads(cluster) == 2
    finally:
        cluster.close()


def test_jobs_of_several_workers_are_retired_whole():
    """A job of two workers: its workers are named ``<job>-0`` and ``<job>-1`` and both map back to the job."""
    cluster = _local_job_cluster(cores=2, processes=2)
    try:
        cluster.scale(jobs=1)
        job = next(iter(cluster.worker_spec))
        assert allocation.job_of_worker(cluster, f"{job}-0") == allocation.job_of_worker(cluster, f"{job}-1") == job
    finally:
        cluster.close()


@pytest.mark.parametrize("words, resources", [
    ([], {}),
    (["--lifetime", "55m", "--resources", "GPU=1,MEM=2e9"], {"GPU": 1.0, "MEM": 2e9}),
    (["--resources=GPU=2"], {"GPU": 2.0}),
])
def test_worker_resources_are_read_as_dask_reads_them(words, resources):
    assert allocation.worker_resources(words) == resources
