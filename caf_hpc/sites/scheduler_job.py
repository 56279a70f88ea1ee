"""The Dask scheduler in a batch job of its own (``dask_scheduler: {placement: job}``): the steering side.

Some sites do not let compute nodes open connections to the host the steering script
runs on. With dask-jobqueue's default the scheduler runs in the steering process and
every worker connects to it, so no worker ever arrives there. With ``placement: job``
the scheduler runs in a batch job of the site: it writes its address to a scheduler
file on the shared file system (Dask's ``--scheduler-file``, with the TLS files'
locations beside it), the workers' jobs are given that address, and the steering process
connects to it, outward, as a client; nothing listens in the steering process.

This is dask-jobqueue's own cluster with a different scheduler spec, which is what
``SpecCluster`` is for (dask-jobqueue #186 and #390 asked for it): the cluster's
``scheduler_cls`` is ``SchedulerJob``, a ``ProcessInterface`` like dask-jobqueue's worker
jobs, whose ``start()`` submits the scheduler's job through the site's own job class
(same directives, prologue, Python, container and log directory; its command is
``caf_hpc.sites.scheduler_in_job`` in place of the worker's) and returns once the
scheduler file names the address. ``SpecCluster`` then connects to that address and
closes the scheduler when the cluster closes (``terminate``), and ``close()`` cancels the
job and waits until the batch system no longer runs it.

No job is left behind: the cluster is closed at the interpreter's exit (also after
Ctrl-C and after a failing strategy, ``steering.clusters.close_all``); a scheduler job
still starting then, or one whose cluster never finished its start, is cancelled by
``cancel_leftovers``; a Ctrl-C while the steering script waits for the job cancels it
(``abandon``); and a steering process killed outright leaves a scheduler that ends itself
once no steering process has been connected for ``client_timeout`` seconds.
"""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.deploy.spec import ProcessInterface

from .. import interrupt
from ..basf2_compat import log_info
from .errors import SiteConfigError

#: The command the scheduler's job runs, as ``python -m MODULE`` (dask-jobqueue's ``worker_command``).
JOB_MODULE = "caf_hpc.sites.scheduler_in_job"
#: Seconds between looks at the scheduler file while its job starts.
FILE_POLL = 0.1
#: Seconds between asking the batch system about the scheduler's job while it starts.
STATE_POLL = 2.0
#: How long ``close()`` waits for the batch system to stop running the cancelled job.
GONE_WAIT = 15.0
#: How long ``abandon``/``cancel_leftovers`` wait for a submission under way (its job id is not known before).
SUBMISSION_WAIT = 15.0


class SchedulerJobError(RuntimeError):
    """The scheduler's batch job did not start, or ended before it wrote its address; says why and where its log is."""


@dataclass
class SchedulerJobPlan:
    """What ``SchedulerJob`` needs from the site: the job class and its arguments, the file, the waits."""

    site: str
    job_cls: Any
    job_kwargs: dict
    scheduler_file: Path
    start_wait: float
    client_timeout: float
    scheduler_type: Any
    log_directory: str | None = None
    #: The job this plan started, once there is one (``abandon`` cancels it).
    job: SchedulerJob | None = field(default=None, repr=False)
    submitted: threading.Event = field(default_factory=threading.Event, repr=False)
    abandoned: threading.Event = field(default_factory=threading.Event, repr=False)

    def abandon(self) -> None:
        """Cancels this plan's job now, from any thread (the cluster's start was interrupted or failed)."""
        self.abandoned.set()
        if self.job is not None:
            self.submitted.wait(SUBMISSION_WAIT)
            self.job.cancel_now()


_lock = threading.Lock()
_live: dict = {}  # id(SchedulerJob) -> SchedulerJob, from submission to close
_submissions = 0


def cancel_leftovers() -> list:
    """Cancels every scheduler job this process submitted and did not close; returns their ids.

    For the interpreter's exit, after the clusters were closed: a cluster whose start was
    interrupted (Ctrl-C while its scheduler's job sat in the queue) is known to no one else.
    """
    deadline = time.monotonic() + SUBMISSION_WAIT
    while time.monotonic() < deadline:
        with _lock:
            if not _submissions:
                break
        time.sleep(0.05)
    with _lock:
        jobs = list(_live.values())
    cancelled = []
    for job in jobs:
        if job.cancel_now():
            cancelled.append(job.job_id)
    return cancelled


def read_address(path: Path) -> str | None:
    """The address in a scheduler file, or None while there is none (Dask writes the file in place, not atomically)."""
    try:
        with open(path, encoding="utf-8") as stream:
            address = json.load(stream).get("address")
    except (OSError, ValueError, AttributeError):
        return None
    return address if isinstance(address, str) and "://" in address else None


class SchedulerJob(ProcessInterface):
    """The scheduler of a dask-jobqueue cluster, running in a batch job (a ``SpecCluster`` scheduler spec).

    Takes the scheduler options dask-jobqueue passes (``protocol``, ``security``,
    ``interface``, ``dashboard_address``; ``host``, ``port`` if the site sets them) and
    the site's other ``scheduler_options``, which become Dask config of the scheduler's
    process (``allowed_failures`` -> ``distributed.scheduler.allowed-failures``).
    """

    def __init__(self, plan: SchedulerJobPlan, protocol: str | None = None, security: Any = None,
                 interface: str | None = None, host: str | None = None, port: Any = None,
                 dashboard_address: str | None = None, **settings: Any) -> None:
        super().__init__()
        self.plan = plan
        self.job_id: str | None = None
        self.reachable_at: float | None = None
        self.started_after: float | None = None
        self._job: Any = None
        self._cancelled = False
        extra = ["--port", str(port or 0), "--client-timeout", f"{plan.client_timeout:g}"]
        if host:
            extra += ["--host", str(host)]
        elif interface and interface != plan.job_kwargs.get("interface"):
            extra += ["--interface", str(interface)]
        if dashboard_address:
            extra += ["--dashboard-address", str(dashboard_address)]
        for key, value in sorted(settings.items()):
            extra += ["--config", f"distributed.scheduler.{key.replace('_', '-')}={value}"]
        kwargs = dict(plan.job_kwargs, protocol=protocol, security=security,
                      worker_extra_args=[shlex.quote(word) for word in extra])  # dask-jobqueue quotes nothing
        self._job = plan.job_cls(scheduler=str(plan.scheduler_file), name="scheduler", **kwargs)
        plan.job = self

    def job_script(self) -> str:
        """The script the scheduler's job runs."""
        return self._job.job_script()

    async def start(self) -> None:
        plan = self.plan
        if plan.abandoned.is_set():
            plan.submitted.set()  # nothing to wait for
            raise SchedulerJobError("the cluster's start was stopped before its scheduler's job was submitted")
        _private_directory(plan.scheduler_file.parent)
        plan.scheduler_file.unlink(missing_ok=True)
        submitted_at = time.monotonic()
        # Shielded: a start cancelled now (Ctrl-C cancels what ``sync`` waits for) would leave sbatch to queue the
        # job with no one reading its id; the submission ends, and ``abandon``/``cancel_leftovers`` cancel the job.
        self._submission = asyncio.ensure_future(self._submit())
        await asyncio.shield(self._submission)
        log_info(f"site {plan.site}: Dask scheduler submitted as batch job {self.job_id}; waiting for its address in "
                 f"{plan.scheduler_file}")
        try:
            self.address = await self._wait_for_address(submitted_at)
        except BaseException:
            await asyncio.get_running_loop().run_in_executor(None, self.cancel_now)
            raise
        #: When the address was read (``time.monotonic()``), and how long after the submission.
        self.reachable_at = time.monotonic()
        self.started_after = self.reachable_at - submitted_at
        log_info(f"site {plan.site}: Dask scheduler at {self.address} in batch job {self.job_id} "
                 f"({self.started_after:.1f} s after its submission)")
        await super().start()

    async def _submit(self) -> None:
        """dask-jobqueue's own submission and job id parsing; the job is known to ``cancel_leftovers`` from then."""
        global _submissions
        with _lock:
            _submissions += 1
        try:
            await self._job.start()
            self.job_id = self._job.job_id
            with _lock:
                _live[id(self)] = self
        finally:
            with _lock:
                _submissions -= 1
            self.plan.submitted.set()

    async def _wait_for_address(self, since: float) -> str:
        plan = self.plan
        loop = asyncio.get_running_loop()
        next_look = since
        state = "submitted"
        while True:
            address = read_address(plan.scheduler_file)
            if address:
                return address
            if plan.abandoned.is_set() or self._cancelled:
                raise SchedulerJobError(f"the scheduler's batch job {self.job_id} was cancelled while it started")
            if interrupt.interrupted():
                raise SchedulerJobError(f"interrupted (Ctrl-C) while the scheduler's batch job {self.job_id} started")
            now = time.monotonic()
            if now >= next_look:
                next_look = now + STATE_POLL
                states = await loop.run_in_executor(None, plan.scheduler_type.job_states, [self.job_id])
                if states is not None:
                    state = states.get(str(self.job_id), "gone")
                    if state in ("gone", "other") and not read_address(plan.scheduler_file):
                        raise SchedulerJobError(self._ended_message())
            if now - since > plan.start_wait:
                raise SchedulerJobError(
                    f"site {plan.site}: the Dask scheduler's batch job {self.job_id} did not start within "
                    f"{plan.start_wait:g} s (its state: {state}); it was cancelled. Raise dask_scheduler.start_wait "
                    f"if the queue is that slow, or give its job a quicker queue (dask_scheduler.job.queue)")
            await asyncio.sleep(FILE_POLL)

    def _ended_message(self) -> str:
        plan = self.plan
        where = (f"its output is in {plan.log_directory}" if plan.log_directory
                 else "its output is where the batch system puts job output (set cluster.log_directory)")
        return (f"site {plan.site}: the Dask scheduler's batch job {self.job_id} ended before it wrote its address to "
                f"{plan.scheduler_file}; {where}. Its Python must have caf-hpc and Dask (cluster.python, container)")

    def cancel_now(self) -> bool:
        """Cancels the job with the batch system's cancel command, in this thread; True if there was one to cancel."""
        with _lock:
            live = _live.pop(id(self), None) is not None
        self._cancelled = True
        if not live or not self.job_id:
            return False
        command = [*shlex.split(self.plan.job_cls.cancel_command), str(self.job_id)]
        try:
            subprocess.run(command, capture_output=True, timeout=30, start_new_session=True)
        except (OSError, subprocess.SubprocessError):
            pass  # gone already, or the batch system does not answer: nothing better to do at exit
        self.plan.scheduler_file.unlink(missing_ok=True)
        return True

    async def close(self) -> None:
        """Cancels the job (its scheduler was told to close already, if it could be) and waits until it no longer
        runs, so that the run leaves no job behind."""
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(None, self.cancel_now):
            await loop.run_in_executor(None, self._wait_until_gone)
        await super().close()

    def _wait_until_gone(self) -> None:
        deadline = time.monotonic() + GONE_WAIT
        while time.monotonic() < deadline:
            states = self.plan.scheduler_type.job_states([self.job_id])
            if states is None or states.get(str(self.job_id)) not in ("pending", "running"):
                return
            time.sleep(0.2)


def _private_directory(directory: Path) -> None:
    """The scheduler file's directory, mode 0700: the address is no secret, but the site's TLS directory has
    the same rule."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise SiteConfigError(f"dask_scheduler.directory: cannot create {directory}: {err.strerror}") from None


def scheduler_directory(site: Any) -> Path:
    """Where the site's scheduler files go, as this process sees it (``~`` and ``$VARS`` expanded)."""
    return Path(os.path.expandvars(os.path.expanduser(site.dask_scheduler["directory"])))


def plan_for(site: Any, security: Any, cluster_arguments: Callable[..., tuple[Any, dict]]) -> SchedulerJobPlan:
    """The scheduler's job for ``site`` (a ``SiteConfig`` with ``placement: job``): the site's own job class and
    ``cluster`` keys, those of ``dask_scheduler.job`` replacing them, and a scheduler file of its own.

    ``cluster_arguments`` is the builder's (``build.cluster_arguments``), handed in by it: the job is made
    exactly as the workers' jobs are, without this module importing the module that imports it."""
    import dataclasses

    from .. import dask_adapter
    from . import schema

    settings = site.dask_scheduler
    directory = scheduler_directory(site)
    scheduler_file = directory / f"{site.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    cluster = dict(site.cluster, **(settings.get("job") or {}))
    cls, kwargs = cluster_arguments(dataclasses.replace(site, cluster=cluster), security, directories=[str(directory)])
    job_cls = dask_adapter.commands_in_own_session(kwargs.pop("job_cls", cls.job_cls))
    for key in set(schema.cluster_only_keys()) | set(schema.SCHEDULER_JOB_NOT_KEYS) | {"security", "protocol"}:
        kwargs.pop(key, None)
    name = kwargs.get("job_name")
    kwargs.update(processes=1, worker_command=JOB_MODULE, job_name=f"{name}-scheduler" if name else "dask-scheduler")
    return SchedulerJobPlan(site=site.name, job_cls=job_cls, job_kwargs=kwargs, scheduler_file=scheduler_file,
                            start_wait=float(settings["start_wait"]), client_timeout=float(settings["client_timeout"]),
                            scheduler_type=site.scheduler_type, log_directory=kwargs.get("log_directory"))
