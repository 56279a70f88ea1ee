"""Replacing batch jobs whose workers were lost.

dask-jobqueue keeps a fixed-size cluster's job objects after their batch job died
(cancelled, killed, out of walltime, its worker removed as hung): the cluster still
counts them, so ``scale()`` submits nothing new and the next strategy waits for a worker
that never comes. This keeper watches the scheduler's worker events: a job that once had
workers connected and now has none is cancelled (in case it still sits in the batch
queue, e.g. hung) and dropped, and the cluster is asked to reach its size again, which
submits a new job under the same name.

An adaptive cluster (``allocation``) owns its size: there a lost job is dropped from the
cluster's plan as well, and the adaptive scaling submits a new one at its next look if
work waits for it, instead of both submitting one for the same need. A job whose worker
the adaptive scaling retired on purpose (idle) is not lost and not reported.
"""
from __future__ import annotations

import threading
from typing import Any

from .. import dask_adapter
from ..basf2_compat import log_warning
from ..sites import allocation
from .worker_events import WorkerWatch


class JobKeeper:
    def __init__(self, client: Any, cluster: Any) -> None:
        self._client = client
        self._cluster = cluster
        self._seen: set = set()   # jobs that had workers connected at some point
        self._lock = threading.Lock()

    def _connected_jobs(self) -> set:
        names = {str(w.get("name")) for w in self._client.scheduler_info(n_workers=-1)["workers"].values()}
        return {job for job in list(self._cluster.workers)
                if any(name == job or name.startswith(f"{job}-") for name in names)}

    def on_worker_event(self, message: dict) -> None:
        """Listener for add-worker/remove-worker events (runs in a thread of its own)."""
        if self._client.status != "running":
            return  # the client is closing: its jobs are being cancelled on purpose
        try:
            with self._lock:
                connected = self._connected_jobs()
                self._seen |= connected
                lost = sorted(self._seen - connected) if message.get("action") == "remove-worker" else []
                self._seen -= set(lost)
            if lost:
                self._cluster.loop.add_callback(self._replace, lost)
        except Exception as err:  # a closing client or cluster: nothing left to keep
            log_warning(f"could not check the batch jobs after a worker event: {err!r}")

    async def _replace(self, lost: list) -> None:
        adaptive = allocation.adaptive_of(self._cluster)
        if adaptive is not None:
            retired = {job for job in lost if any(allocation.job_of_worker(self._cluster, name) == job
                                                  for name in adaptive.retiring)}
            adaptive.retiring -= {name for name in adaptive.retiring
                                  if allocation.job_of_worker(self._cluster, name) in retired}
            for job in await dask_adapter.drop_jobs(self._cluster, lost):
                if job.name not in retired:
                    log_warning(f"batch job {getattr(job, 'job_id', '?')} ({job.name}) lost its workers; "
                                "another is submitted if work waits for it")
            return
        for job in await dask_adapter.replace_jobs(self._cluster, lost):
            log_warning(f"batch job {getattr(job, 'job_id', '?')} ({job.name}) lost its workers; "
                        "submitted a replacement")


def keep_jobs(client: Any, cluster: Any) -> None:
    """Replaces ``cluster``'s lost batch jobs from now on."""
    WorkerWatch.of(client).add_listener(JobKeeper(client, cluster).on_worker_event)
