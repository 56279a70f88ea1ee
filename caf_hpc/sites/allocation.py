"""How many batch jobs a site's cluster holds: what the calibrations need now, not a fixed number.

A calibration's demand changes all the time: hundreds of collector subjobs, then one
strategy at a time per calibration, then nothing while CAF checks its jobs or moves to the
next iteration. A fixed ``scale: {jobs: N}`` holds N batch jobs through all of it; this
module gives batch sites (by default) a cluster that follows the demand, within the site's
``minimum_jobs`` and ``maximum_jobs``, and lets a job go once it has been idle for the
site's ``idle_grace``.

It is Dask's own ``Adaptive`` (through dask-jobqueue's ``JobQueueCluster.adapt``, which turns
jobs into workers), with two of its decisions replaced, because Dask's defaults are made for
many short tasks and not for ours:

* **target** (how many workers): Dask's ``Scheduler.adaptive_target`` divides the expected
  work by ``target_duration`` (5 s), with 0.5 s per task whose kind has never run: two
  strategies waiting for their first run ask for one worker, and the second waits although
  the site allows one more job. Every task of ours (a collector subjob, a strategy) is long
  and takes a worker thread from its start to its end, so the demand here is the number of
  tasks: those running or assigned to a worker, and those waiting in the scheduler (queued,
  or with no worker able to run them) that a new job's worker could run: a task restricted
  to named workers or hosts, or asking for resources the site's workers do not have, gets
  no job started for it (another pool, or a worker it waits for, has to take it).
* **which workers go**: Dask's ``Scheduler.workers_to_close`` with a target picks idle workers
  first, but takes busy ones when the target asks for it, and retires single workers of a
  job that holds several. Here only jobs all of whose workers run nothing are retired, and
  the retirement is checked and begun in one step on the scheduler, so that no task is given
  to a worker between the check and the retirement. A running strategy is never cut short
  by scaling down.

How long an idle job stays is Dask's own ``wait_count`` (consecutive checks, ``interval``
apart, that find a job unneeded) computed from ``idle_grace``. Tasks' priorities (collector
subjobs queue behind strategies) are Dask's to honour; the demand counts every task.

Lost jobs (killed, cancelled, out of walltime) are dropped from an adaptive cluster by
``job_replacement`` instead of being resubmitted under the same name; this adaptive scaling
then submits new ones if work waits. So the two never submit a job for the same need, and a
job that reached its end is replaced when needed, unlike dask-jobqueue's adaptive clusters
(dask/dask-jobqueue#691, #701).
"""
from __future__ import annotations

import logging
import math
import shlex
from collections.abc import Iterable
from typing import Any

from distributed.deploy.adaptive import Adaptive

from .. import dask_adapter
from .scale_defaults import DEFAULT_IDLE_GRACE, adaptive_settings, is_fixed

logger = logging.getLogger(__name__)

#: Seconds between two looks at the demand (Dask's own default for ``distributed.adaptive.interval``).
INTERVAL = 1.0


def worker_resources(worker_extra_args: Iterable[str]) -> dict:
    """The resources (``--resources "GPU=1 MEM=2e9"``) the site gives its workers, as Dask parses them."""
    words = list(worker_extra_args or ())
    text = ""
    for index, word in enumerate(words):
        if word == "--resources" and index + 1 < len(words):
            text = words[index + 1]
        elif word.startswith("--resources="):
            text = word.split("=", 1)[1]
    resources: dict = {}
    for item in shlex.split(text.replace(",", " ")):
        name, _, amount = item.partition("=")
        try:
            resources[name] = float(amount)
        except ValueError:
            continue
    return resources


def _scheduler_demand(dask_scheduler: Any, resources: dict) -> dict:
    """On the scheduler: each worker's name and tasks, and the waiting tasks a new job's worker could run.

    Runs in the scheduler's process (dask-jobqueue's is this one), which imports caf-hpc to run it.
    """
    def runnable_on_new_worker(ts: Any) -> bool:
        if ts.loose_restrictions:
            return True
        if ts.worker_restrictions or ts.host_restrictions:
            return False
        needs = ts.resource_restrictions or {}
        return all(resources.get(name, 0) >= amount for name, amount in needs.items())

    waiting = sum(1 for ts in dask_scheduler.queued) + sum(
        1 for ts in dask_scheduler.unrunnable if runnable_on_new_worker(ts))
    workers = {str(ws.name): len(ws.processing) for ws in dask_scheduler.workers.values()}
    return {"waiting": waiting, "workers": workers}


async def _retire_if_idle(dask_scheduler: Any, names: list) -> list:
    """On the scheduler: retires those of the workers ``names`` that run nothing now; returns the names retired.

    A worker holding results that no other worker can take (the last one, say, while the
    runner still holds its strategies' futures) is not retired: cancelling its job would lose
    the results and run their tasks again. It is left out here rather than handed to Dask's
    retirement, which would give up on it with a warning at every ``idle_grace``.

    The check and the start of the retirement (the worker is marked ``closing_gracefully`` and
    gets no new task) happen without the scheduler handling anything in between, except the
    retirement lock, which is free unless another retirement runs.
    """
    asked = set(names)
    idle = [ws for ws in dask_scheduler.workers.values()
            if str(ws.name) in asked and not ws.processing and not ws.long_running]
    if not any(str(ws.name) not in asked for ws in dask_scheduler.workers.values()):
        idle = [ws for ws in idle if not ws.has_what]  # no worker would stay to take their results
    if not idle:
        return []
    retired = await dask_scheduler.retire_workers(names=[ws.name for ws in idle], close_workers=True, remove=True,
                                                  stimulus_id="caf-hpc-idle-grace")
    return [str(info.get("name")) for info in retired.values()]


#: Names of the scheduler handlers this module adds (``_install``), called through the cluster's RPC.
DEMAND_HANDLER = "caf_hpc_demand"
RETIRE_HANDLER = "caf_hpc_retire_idle"


def _install(dask_scheduler: Any) -> None:
    """On the scheduler, once: the two handlers the adaptive scaling calls every ``interval``.

    Handlers rather than a function sent at every look: the scheduler logs each function it
    is sent and publishes it as an event to every client, once a second for as long as the
    cluster runs.
    """
    def demand(resources: dict | None = None) -> dict:
        return _scheduler_demand(dask_scheduler, resources or {})

    async def retire(names: list | None = None) -> list:
        return await _retire_if_idle(dask_scheduler, list(names or ()))

    dask_scheduler.handlers[DEMAND_HANDLER] = demand
    dask_scheduler.handlers[RETIRE_HANDLER] = retire


class DemandAdaptive(Adaptive):
    """Dask's ``Adaptive`` with the demand and the choice of workers to retire made for long tasks (module docstring).

    ``idle_grace`` (s) becomes Dask's ``wait_count``: the number of consecutive checks,
    ``interval`` apart, that must find a job unneeded before it is retired.
    """

    def __init__(self, cluster: Any, idle_grace: float = DEFAULT_IDLE_GRACE, resources: dict | None = None,
                 interval: float = INTERVAL, **kwargs: Any) -> None:
        kwargs.setdefault("wait_count", max(1, math.ceil(idle_grace / interval)))
        super().__init__(cluster, interval=interval, **kwargs)
        self.idle_grace = idle_grace
        self.resources = dict(resources or {})
        self.threads = dask_adapter.job_worker_threads(cluster)
        #: Worker names retired on purpose; ``job_replacement`` does not count their jobs as lost.
        self.retiring: set = set()
        self._workers: dict = {}
        self._last_wanted = -1
        self._installed = False

    async def target(self) -> int:
        """Workers wanted: a worker thread for every task running, assigned or waiting that a new job could run."""
        if not self._installed:
            await dask_adapter.run_on_scheduler_comm(self.scheduler, _install)
            self._installed = True
        demand = await getattr(self.scheduler, DEMAND_HANDLER)(resources=self.resources)
        self._workers = demand["workers"]
        tasks = sum(self._workers.values()) + demand["waiting"]
        wanted = math.ceil(tasks / self.threads)
        if wanted != self._last_wanted:
            logger.debug("demand: %d task(s), %d worker(s) wanted, %d planned", tasks, wanted, len(self.plan))
            self._last_wanted = wanted
        return wanted

    async def workers_to_close(self, target: int) -> list:
        """Workers of jobs that run nothing, enough to come down to ``target`` (fewer if the others are busy)."""
        wanted = len(self.plan) - target
        jobs: dict = {}
        for name in self._workers:
            jobs.setdefault(job_of_worker(self.cluster, name), []).append(name)
        chosen: list = []
        for names in jobs.values():
            if len(chosen) >= wanted:
                break
            if all(self._workers.get(name, 1) == 0 for name in names):
                chosen += names
        return chosen

    async def scale_down(self, workers: Any) -> None:
        """Retires the still idle ``workers`` gracefully on the scheduler, then cancels their jobs."""
        workers = [str(name) for name in workers]
        if not workers:
            return
        pending = set(workers) - set(self._workers)  # not yet connected: their jobs are cancelled as they are
        self.retiring.update(workers)
        idle = await getattr(self.scheduler, RETIRE_HANDLER)(names=workers)
        gone = set(idle) | pending
        self.retiring -= set(workers) - gone
        if gone:
            logger.info("retiring idle batch jobs' workers %s", sorted(gone))
            cluster: Any = self.cluster  # a dask-jobqueue cluster (SpecCluster), which has scale_down
            await cluster.scale_down(sorted(gone))


def job_of_worker(cluster: Any, name: str) -> str:
    """The batch job (its ``cluster.worker_spec`` name) of a worker: itself, or ``<job>-<i>`` of a job of several."""
    for job, spec in list(cluster.worker_spec.items()):
        if str(job) == name or any(name == f"{job}{suffix}" for suffix in spec.get("group", ())):
            return str(job)
    return name


def adaptive_of(cluster: Any) -> DemandAdaptive | None:
    """The cluster's ``DemandAdaptive`` while it runs, else None (a fixed cluster, or one being closed)."""
    adaptive = dask_adapter.adaptive_of(cluster)
    if isinstance(adaptive, DemandAdaptive) and adaptive.state in ("starting", "running"):
        return adaptive
    return None


def apply_scale(cluster: Any, scale: dict, worker_extra_args: Iterable[str] = ()) -> None:
    """A fixed number of jobs (``jobs: N``), or the demand-following scaling of this module (the default)."""
    if is_fixed(scale):
        cluster.scale(jobs=scale["jobs"])
        return
    settings = adaptive_settings(scale)
    cluster.adapt(Adaptive=DemandAdaptive, minimum_jobs=settings["minimum_jobs"],
                  maximum_jobs=settings["maximum_jobs"], idle_grace=float(settings["idle_grace"]),
                  resources=worker_resources(worker_extra_args))
