"""On each worker of a batch site: when its batch job ends, published for the steering process, and the drain.

A batch job ends at its walltime whatever runs in it. Dask's own answer, ``--lifetime``
(``Worker(lifetime=...)``), closes the worker at a fixed age through
``close_gracefully``, whose ``retire_workers`` removes the worker without waiting for its
running task: a strategy or collector job in progress is cut as surely as by the walltime
(dask/dask-jobqueue#416 asks for the "soft limit" that would stop new work instead; it was
never built). And its age is counted from the worker's start, not the job's.

``WalltimePlugin`` is that soft limit. Registered by the steering process
(``caf_hpc.steering.placement``) on every worker, current and future, it

* works out when its batch job ends (``job_end``): from the batch system, asked from
  inside the job (``Scheduler.job_time_left``: Slurm's ``SLURM_JOB_END_TIME`` or
  ``squeue %L``); else from the job's start, the oldest process of the job above the
  worker (the job script's shell, found by the job-id variable in its environment), plus
  the site's walltime; else from the worker's own start plus the walltime, which is late
  by however long the job took to start its worker (a few seconds);
* publishes it in the scheduler's metadata (``METADATA_KEY``, one entry per worker
  address), where the steering process reads every worker's end in one call;
* ``margin`` seconds before that end stops taking new work (the worker's status becomes
  ``closing_gracefully``, the status Dask's own ``retire_workers`` uses: the scheduler
  sends it no new task, and the worker starts none of those it holds), and once nothing
  runs on it, closes gracefully (with its nanny), so that its batch job ends and whatever
  keeps the cluster's size (adaptive scaling, or ``steering.job_replacement`` for a fixed
  number of jobs) submits a new one while the old one still had ``margin`` seconds left.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil
from distributed import WorkerPlugin

from .. import dask_adapter
from ..sites import schedulers

#: Under "distributed", whose handler and level a worker sets up: the lines land in the job's log.
logger = logging.getLogger("distributed.caf_hpc.walltime")

#: The scheduler's metadata key under which each worker's end is published: ``[METADATA_KEY, address]``.
METADATA_KEY = "caf-hpc-job-end"
#: How often a worker checks whether it must drain, and whether a draining worker is idle.
CHECK_EVERY = 1.0
#: How long asking the batch system for the job's time left may take.
QUERY_TIMEOUT = 10.0


@dataclass(frozen=True)
class JobEnd:
    """When this worker's batch job ends (seconds since the epoch), and how that was learnt."""

    end: float
    source: str

    def as_metadata(self, margin: float) -> dict:
        return {"end": self.end, "source": self.source, "margin": margin}


def job_start(environ: Mapping[str, str], variables: tuple, pid: int | None = None) -> float | None:
    """When the batch job this process runs in started: the start of its oldest ancestor (itself included) whose
    environment carries the same job id in one of ``variables``; None when no job id is set or none can be read.

    The batch system starts the job script with its id in the environment, and the script starts the nanny,
    which starts the worker: the outermost process with the id is the script, started when the job started.
    A process whose environment cannot be read (another user's, a finished one) ends the search there.
    """
    wanted = [(name, environ[name]) for name in variables if environ.get(name)]
    if not wanted:
        return None
    try:
        process: psutil.Process | None = psutil.Process(pid if pid is not None else os.getpid())
        oldest = None
        while process is not None and process.pid > 1:
            try:
                theirs = process.environ()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                break
            if not any(theirs.get(name) == value for name, value in wanted):
                break
            oldest = process
            process = process.parent()
        return oldest.create_time() if oldest is not None else None
    except psutil.Error:
        return None


def job_end(scheduler: str, walltime: float, environ: Mapping[str, str] | None = None,
            pid: int | None = None, timeout: float = QUERY_TIMEOUT) -> JobEnd:
    """When the batch job of this process ends, from the best source there is (see the module's docstring)."""
    environ = os.environ if environ is None else environ
    kind = schedulers.get(scheduler)
    left = kind.job_time_left(environ, timeout)
    if left is not None:
        return JobEnd(time.time() + left, f"{kind.title}'s time left for the job")
    start = job_start(environ, kind.job_id_variables, pid)
    if start is not None:
        return JobEnd(start + walltime, "the job's start plus the site's walltime")
    process = psutil.Process(pid if pid is not None else os.getpid())
    try:
        parent = process.parent()
        if parent is not None and "distributed" in " ".join(parent.cmdline()):
            process = parent  # the nanny started first
    except psutil.Error:
        pass
    return JobEnd(process.create_time() + walltime, "the worker's start plus the site's walltime")


class WalltimePlugin(WorkerPlugin):
    """Publishes when the worker's batch job ends, and drains the worker ``margin`` seconds before it."""

    name = "caf-hpc-walltime"
    idempotent = True  # one per worker, whoever registers it again

    def __init__(self, scheduler: str, walltime: float, margin: float) -> None:
        self.scheduler = scheduler
        self.walltime = float(walltime)
        self.margin = float(margin)
        self.end: JobEnd | None = None
        self._watch: asyncio.Task | None = None
        self._leaving = False

    async def setup(self, worker: Any) -> None:
        loop = asyncio.get_running_loop()
        # a query of the batch system takes a moment: not on the worker's event loop
        self.end = await loop.run_in_executor(None, job_end, self.scheduler, self.walltime)
        await worker.scheduler.set_metadata(keys=[METADATA_KEY, worker.address],
                                            value=self.end.as_metadata(self.margin))
        logger.info("caf-hpc: batch job ends at %s (%s, in %.0f s); drains %.0f s before",
                    time.strftime("%H:%M:%S", time.localtime(self.end.end)), self.end.source,
                    self.end.end - time.time(), self.margin)
        self._watch = asyncio.ensure_future(self._drain_when_due(worker))

    async def teardown(self, worker: Any) -> None:
        if self._watch is not None and self._watch is not asyncio.current_task() and not self._leaving:
            self._watch.cancel()  # the worker closes for another reason; while it leaves, the watch is what closes it

    async def _drain_when_due(self, worker: Any) -> None:
        assert self.end is not None
        while time.time() < self.end.end - self.margin:
            await asyncio.sleep(min(CHECK_EVERY, max(0.0, self.end.end - self.margin - time.time())))
        if not dask_adapter.stop_taking_work(worker):
            return  # closing already
        logger.info("caf-hpc: %.0f s left in the batch job: taking no new work, leaving once idle",
                    self.end.end - time.time())
        while dask_adapter.tasks_running(worker):
            await asyncio.sleep(CHECK_EVERY / 4)
        logger.info("caf-hpc: idle with %.0f s left in the batch job: leaving", self.end.end - time.time())
        self._leaving = True
        await dask_adapter.leave(worker, "caf-hpc: its batch job is near its walltime")


__all__ = ["METADATA_KEY", "JobEnd", "WalltimePlugin", "job_end", "job_start"]
