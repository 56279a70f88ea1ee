"""Worker pools of a batch site: batch jobs of another size beside the ``cluster`` section's, for the algorithms
that need them.

A site config may name pools, each a set of ``cluster`` keys that differ from the
default pool's (``cores``, ``memory``, ``walltime``, ``queue``, ...), how many jobs of it
to keep (``jobs``, default 1) and extra Dask resources its workers give
(``resources: {gpus: 1}``):

    pools:
      alignment:
        cores: 8
        memory: "16GB"
        walltime: "08:00:00"

The pools' jobs run the same worker command on the same scheduler as the default pool's:
each pool's jobs are dask-jobqueue ``Job`` objects of the cluster's job class, made with
the cluster's own job arguments and the pool's keys over them (``PoolJobs``). On a site
with pools, every worker, the default pool's too, declares what it gives as Dask worker
resources (``--resources cores=8,memory=16000000000``), which is how Dask places a
strategy that asks for them (``caf_hpc.resources``). The default pool alone is
scaled by the ``scale`` section and its policy; each pool keeps its ``jobs`` for the
cluster's life, and they are cancelled with it.
"""
from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable
from typing import Any

from .. import checks, resources
from . import schema

#: What a pool may say besides the cluster keys it overrides.
OWN_KEYS = {"jobs": "count", "resources": "extra"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _job_keys(scheduler: Any) -> tuple:
    """The cluster keys a pool may override: those of the job, not of the cluster's scheduler."""
    return tuple(key for key in scheduler.cluster_keys() if key not in schema.cluster_only_keys())


def validate(check: Any, given: Any, check_unquoted: Callable[[Any, str, Any], None]) -> dict:
    """The ``pools`` section, checked (problems go to ``check``, the site validation's collector, and values a job
    script takes unquoted to ``check_unquoted``) and normalised."""
    scheduler = check.scheduler
    if not scheduler.is_batch:
        check.error("pools", f"a {scheduler.name} site has one kind of worker; pools are for batch sites")
        return {}
    if not isinstance(given, dict):
        check.error("pools", "expected a mapping of pool names to their keys, e.g. "
                             "{alignment: {cores: 8, memory: 16GB}}")
        return {}
    allowed = _job_keys(scheduler)
    result: dict = {}
    for name, keys in given.items():
        where = f"pools.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            check.error(where, "a pool's name is a word of letters, digits, _ and - (it names its workers)")
            continue
        if not isinstance(keys, dict):
            check.error(where, "expected a mapping of keys, e.g. {cores: 8, memory: 16GB}")
            continue
        pool: dict = {}
        for raw_key, value in keys.items():
            key = schema.ALIASES.get(schema.normalise_key(raw_key), schema.normalise_key(raw_key))
            spot = f"{where}.{raw_key}"
            if key == "jobs":
                pool[key] = check.value(spot, "count", value)
            elif key == "resources":
                extra, problems = resources.amounts(value, spot)
                for problem in problems:
                    check.error("", problem)
                clash = sorted(set(extra) & set(resources.KNOWN))
                if clash:
                    check.error(spot, f"{', '.join(clash)} come from the pool's own cores and memory; "
                                      "set those keys instead")
                pool[key] = extra
            elif key in allowed:
                pool[key] = check.value(spot, scheduler.cluster_kind(key), value)
                if key in schema.UNQUOTED_KEYS:
                    check_unquoted(check, spot, value)
            else:
                guess = checks.closest(key, (*allowed, *OWN_KEYS))
                hint = f"; did you mean {guess!r}?" if guess else "."
                check.error(spot, f"unknown key{hint} A pool takes jobs, resources and the job keys of the cluster "
                                  f"section it overrides: {', '.join(allowed)}")
        result[name] = pool
    return result


def _merged(site: Any, pool: dict) -> dict:
    """A pool's cluster keys: the default pool's with the pool's own over them."""
    merged = {key: value for key, value in site.cluster.items() if key not in schema.cluster_only_keys()}
    merged.update({key: value for key, value in pool.items() if key not in OWN_KEYS})
    return merged


def _per_worker(keys: dict, extra: dict | None = None) -> dict:
    return resources.per_worker(keys, extra)


def offers(site: Any) -> list[tuple[str, dict]]:
    """``(label, what each worker gives)`` for the default pool and each named pool."""
    return [(offer.label, dict(offer.amounts)) for offer in resources.site_offers(site)]


def _with_resources(kwargs: dict, given: dict) -> dict:
    args = [str(arg) for arg in kwargs.get("worker_extra_args") or []]
    return dict(kwargs, worker_extra_args=[*args, "--resources", resources.worker_argument(given)])


def default_pool_arguments(site: Any, kwargs: dict) -> dict:
    """The cluster class's arguments, with the default pool's workers declaring their resources on a site with pools."""
    if not site.pools:
        return kwargs
    return _with_resources(kwargs, _per_worker(site.cluster))


# --------------------------------------------------------------------------- the pools' jobs
_kept: weakref.WeakKeyDictionary[Any, PoolJobs] = weakref.WeakKeyDictionary()


class PoolJobs:
    """The batch jobs of a site's pools, on the scheduler of ``cluster`` (a dask-jobqueue cluster)."""

    def __init__(self, cluster: Any, site: Any, job_kwargs: dict) -> None:
        self.cluster = cluster
        self.specs: dict[str, tuple[dict, int]] = {}
        for name, pool in site.pools.items():
            keys = site.scheduler_type.job_arguments({k: v for k, v in pool.items() if k not in OWN_KEYS})
            kwargs = _with_resources({**job_kwargs, **keys}, _per_worker(_merged(site, pool), pool.get("resources")))
            self.specs[name] = (kwargs, pool.get("jobs", 1))
        self.jobs: dict[str, Any] = {}

    def start(self) -> None:
        """Submits each pool's jobs (and returns when the batch system took them)."""
        self.cluster.sync(self._start)

    async def _start(self) -> None:
        job_cls = self.cluster.job_cls
        for pool, (kwargs, count) in self.specs.items():
            for index in range(count):
                name = f"{self.cluster.name}-{pool}-{index}"
                job = job_cls(self.cluster.scheduler_address, name=name, **kwargs)
                self.jobs[name] = job
                await job

    def job_ids(self) -> dict:
        """``{worker name: batch job id}`` of the pools' jobs."""
        return {name: job.job_id for name, job in self.jobs.items()}

    def close(self) -> None:
        """Cancels the pools' jobs."""
        if self.jobs:
            try:
                self.cluster.sync(self._close, callback_timeout=30)
            finally:
                self.jobs.clear()

    async def _close(self) -> None:
        await asyncio.gather(*(job.close() for job in self.jobs.values()), return_exceptions=True)


def start(cluster: Any, site: Any, job_kwargs: dict) -> PoolJobs | None:
    """Submits the jobs of ``site``'s pools beside ``cluster``'s own; None for a site without pools."""
    if not site.pools:
        return None
    jobs = _kept[cluster] = PoolJobs(cluster, site, job_kwargs)
    jobs.start()
    return jobs


def of(cluster: Any) -> PoolJobs | None:
    """The pools' jobs beside ``cluster``, if it has any."""
    return _kept.get(cluster)


def stop(cluster: Any) -> None:
    """Cancels the pools' jobs beside ``cluster`` (before the cluster itself closes)."""
    jobs = _kept.pop(cluster, None)
    if jobs is not None:
        jobs.close()
