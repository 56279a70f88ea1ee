"""Turning a site config into a running dask-jobqueue cluster.

``caf_hpc.steering.clusters`` calls ``build_cluster`` for a batch site, with the site the run
has read; a local site's values are already in the runner's settings
(``steering.settings.resolve_site``). What differs between schedulers is asked of the
site's scheduler (``schedulers``).
"""
from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Callable, Sequence
from typing import Any

from .. import dask_adapter, interrupt
from ..setting_rules import ALLOWED_FAILURES
from . import pools, scheduler_job
from .allocation import apply_scale
from .config import SiteConfig
from .container import container_command
from .errors import SiteConfigError
from .security import security_for, tls_directory


def _expand(path: str) -> str:
    """Paths read on the submit host (batch directives expand nothing) are made absolute there."""
    return os.path.abspath(os.path.expandvars(os.path.expanduser(path)))


def job_class(base: Any, submit_extra: Sequence[str] = (), cancel_extra: Sequence[str] = ()) -> type:
    """``base`` with extra arguments on its submit/cancel commands (dask-jobqueue 0.9 has them for HTCondor only).

    The PBS commands of ``slurm-wlm-torque``, for one, ignore ``#PBS -o/-e`` and need
    ``qsub -o DIR/%x-%j.out -e DIR/%x-%j.err`` for the logs to land in DIR.
    """
    if not submit_extra and not cancel_extra:
        return base
    attributes: dict[str, Any] = {"__module__": __name__}
    if submit_extra:
        attributes["submit_command"] = " ".join([base.submit_command, *map(shlex.quote, submit_extra)])
    if cancel_extra:
        attributes["cancel_command"] = " ".join([base.cancel_command, *map(shlex.quote, cancel_extra)])
    return type(base.__name__, (base,), attributes)


def container_directories(site: SiteConfig, cluster: dict, directories: Sequence[str] = ()) -> list:
    """What a containerised worker must see: TLS files, logs, local directory, the starting directory,
    ``directories``."""
    found: list[str | None] = []
    if site.tls:
        found.append(str(tls_directory(site.security["directory"])))
    found += [cluster.get("log_directory"), cluster.get("local_directory"), os.getcwd(), *directories]
    return found


def cluster_arguments(site: SiteConfig, security: Any = None, directories: Sequence[str] = (),
                      dashboard_address: str | None = None) -> tuple:
    """``(cluster class, keyword arguments)`` for dask-jobqueue, exactly as caf-hpc passes them."""
    scheduler = site.scheduler_type
    cls = scheduler.cluster_class()
    kwargs = scheduler.job_arguments(copy.deepcopy(site.cluster))
    if kwargs.get("log_directory"):
        kwargs["log_directory"] = _expand(kwargs["log_directory"])
    options = dict(kwargs.get("scheduler_options") or {}, allowed_failures=ALLOWED_FAILURES)  # retries decide
    if dashboard_address:
        options["dashboard_address"] = dashboard_address
    kwargs["scheduler_options"] = options
    if not scheduler.native_command_extras:
        submit_extra = [_expand_word(word) for word in kwargs.pop("submit_command_extra", None) or []]
        cancel_extra = [_expand_word(word) for word in kwargs.pop("cancel_command_extra", None) or []]
        job_cls = job_class(cls.job_cls, submit_extra, cancel_extra)
        if job_cls is not cls.job_cls:
            kwargs["job_cls"] = job_cls
    if site.container:
        kwargs["python"] = container_command(site.container, kwargs.get("python"),
                                             container_directories(site, kwargs, directories))
    if security is not None:
        kwargs["security"] = security
    return cls, kwargs


def _expand_word(word: str) -> str:
    """Submit commands run without a shell: expand ``~`` and ``$VARIABLES`` here."""
    return os.path.expandvars(os.path.expanduser(word))


def build_cluster(site: SiteConfig, dashboard_address: str | None = None,
                  keep: Callable[[Any], None] = lambda cluster: None) -> Any:
    """The cluster for a batch site: dask-jobqueue's class, scaled as the site says.

    ``dashboard_address`` is the user's own choice, which wins over the site's. ``keep(cluster)``
    is called before the first job is submitted, with Ctrl-C held back until the submission is
    under way, so that whoever closes clusters at exit has this one, and cancels its jobs.
    """
    security = security_for(site.security["directory"]) if site.tls else None
    cls, kwargs = cluster_arguments(site, security, dashboard_address=dashboard_address)
    job_cls = kwargs.get("job_cls", cls.job_cls)
    submit_command = getattr(job_cls, "submit_command", "") or cls.job_cls.submit_command
    problem = site.scheduler_type.submit_problem(submit_command)
    if problem:  # dask-jobqueue would only log it, and the runner would wait for workers in vain
        raise SiteConfigError(f"{site.source}: {problem}")
    kwargs["job_cls"] = dask_adapter.commands_in_own_session(kwargs.get("job_cls", cls.job_cls))
    kwargs = pools.default_pool_arguments(site, kwargs)
    plan = None
    if site.scheduler_in_job:  # the scheduler in a batch job of its own, instead of in this process
        plan = scheduler_job.plan_for(site, security, cluster_arguments)
        kwargs["scheduler_cls"] = scheduler_job.SchedulerJob
        kwargs["scheduler_options"] = dict(kwargs["scheduler_options"], plan=plan)
    try:
        cluster = cls(**kwargs)
    except BaseException as err:  # Ctrl-C or a failure while the scheduler's job started: it must not stay
        if plan is None:
            raise
        plan.abandon()
        if isinstance(err.__cause__, scheduler_job.SchedulerJobError):  # SpecCluster wraps it: say it plainly
            raise scheduler_job.SchedulerJobError(str(err.__cause__)) from None
        raise
    trial = site.scheduler_type.dry_submit(cluster.job_script(), submit_command, site.name)
    if trial.ok is False:  # refused now, every job would be: say why instead of waiting for workers in vain
        cluster.close()
        output = "\n".join(f"  {line}" for line in trial.output.splitlines()[-5:])
        hint = (f"\n  Is the batch system running? For this machine's testbed: caf-hpc testbed up "
                f"{site.name.split('-', 1)[1]}" if site.name.startswith("localhost-") else "")
        raise SiteConfigError(f"{site.source}: {trial.summary}; no job submitted:\n{output}{hint}")
    with interrupt.deferred():
        keep(cluster)
        apply_scale(cluster, site.scale, site.cluster.get("worker_extra_args") or ())
        pools.start(cluster, site, dask_adapter.job_arguments(cluster))
    return cluster
