"""``DaskBackend``: CAF's collector step on the runner's Dask cluster. The start and end of a collector job's path.

    (this process) -> Dask worker (``caf_hpc.worker.collector``) -> ``bash submit.sh`` -> Dask worker -> (this process)

CAF's backends are ``Local``, ``PBS``, ``LSF`` and ``HTCondor``; this one runs each
collector (sub)job as a Dask task on the same cluster, site config and containers as
the algorithms runner (``clusters.client_for`` shares one cluster per target in the
process). CAF calls ``submit(job)`` from its single main thread, once per collection
and iteration; its calibration threads then poll ``job.ready()`` every 3 s and
``job.update_status()`` every 30 s, and read ``job.status``.

So ``submit`` only prepares each (sub)job's directory as CAF's ``Local`` does
(``submit.sh``, the sandbox, ``__BACKEND_INPUT_FILES__.json``), marks every one
``submitted`` and queues one Dask task each; it returns at once. What the cluster says
(a task started, ended, lost its worker) is gathered as it happens and turned into
statuses only inside ``ready()`` and ``update_status()``, in the thread of the
calibration that asks: no status of CAF's changes behind its back, and a finished job
is seen at the next ``ready()``, not at CAF's next full update 30 s later.
"""
from __future__ import annotations

import asyncio
import atexit
import re
import threading
import time
import uuid
import weakref
from collections import Counter, deque
from functools import partial
from pathlib import Path
from typing import Any

from .. import dask_adapter, interrupt, protocol, resources
from ..basf2_compat import Backend, Result, log_error, log_info, log_warning
from ..checks import did_you_mean, whole_number
from ..worker.collector import run_collector_task
from . import clusters
from .binding import bound_settings
from .logs import log_excerpt
from .placement import WALLTIME_LOSSES, Placement, collector_placement, with_resources
from .progress import RunProgress, StrategyProgress
from .runner import Inbox, TaskDone, on_task_done
from .settings import RunnerSettings, SettingsError, resolve_for_run
from .worker_events import WorkerLost

EXIT_STATUSES = ("failed", "completed")
#: Collector tasks queue behind the strategies of running calibrations, never the reverse.
PRIORITY = -10
#: ``backend_args`` keys this backend reads (CAF hands the Job's own ``backend_args`` too).
BACKEND_ARGS = {"max_running": "at most this many of one backend's (sub)jobs run at once",
                "environment": "'empty' (CAF's Local: only setup_cmds set the job up) or 'worker' (the worker's own)"}
#: How long a finished task's report may take to arrive from its worker.
_RESULT_WAIT = 5.0
#: At most one progress line per collector job in this many seconds, besides its first and last.
_PROGRESS_EVERY = 10.0
#: How often waiting jobs look for a worker in the cluster, and how often they say they wait.
_WAIT_CHECK_EVERY = 1.0
_WAITING_EVERY = 30.0


class DaskResult(Result):
    """CAF's handle on a (sub)job run by ``DaskBackend``: asking it brings the job's status up to date."""

    def __init__(self, job: Any, tracker: Tracker, unit: _Unit | None = None) -> None:
        super().__init__(job)
        self.tracker = tracker
        self._unit = unit

    @property
    def where(self) -> protocol.Where | None:
        """Where the (sub)job ran (host, Dask worker, batch job), once it started; None for a parent job."""
        return self._unit.where if self._unit is not None else None

    def ready(self) -> bool:
        self.tracker.refresh()
        return super().ready()

    def update_status(self) -> None:
        self.tracker.refresh()


class DaskBackend(Backend):
    """Runs CAF's collector jobs on a Dask cluster: the local default, an address or a site.

    ``caf.backend = DaskBackend()`` uses the local default (or ``CAF_HPC_SITE`` /
    ``CAF_HPC_ADDRESS``); ``backend_for(...)`` binds a site, an address or settings, as
    ``runner_for`` does for the algorithms runner, and both share one cluster.
    """

    default_backend_args: dict = {"environment": "empty"}

    def __init__(self, *, backend_args: dict | None = None, settings: dict | None = None) -> None:
        super().__init__(backend_args=backend_args)
        self.overrides = dict(settings or {})
        resolve_for_run(self.overrides)  # a mistake shows where the backend is made, not at the first submit
        _check_backend_args(self.backend_args, "backend_args")
        self._tracker: Tracker | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DaskBackend({resolve_for_run(self.overrides).description})"

    def submit(self, job: Any) -> None:
        """Prepares every (sub)job of ``job`` as CAF's Local does, marks each submitted and queues it;
        returns at once."""
        settings = resolve_for_run(self.overrides)
        args = {**self.backend_args, **(getattr(job, "backend_args", None) or {})}
        _check_backend_args(args, f"{job.name}'s backend_args")
        Path(job.working_dir).mkdir(parents=True, exist_ok=True)
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        job.check_input_data_files()
        if job.splitter:
            job.splitter.create_subjobs(job)
        units = list(job.subjobs.values()) or [job]  # every subjob exists before any leaves init
        for unit in units:
            self._prepare(unit)
        try:
            tracker = self._tracker_for(settings)
        except BaseException as err:  # no cluster (or Ctrl-C while it started)
            for unit in {*units, job}:  # else CAF's calibration thread waits for them to leave init for ever
                unit.result = Result(unit)  # ready once failed
                unit._status = "failed"  # quietly, as in Tracker._fail_unfinished
            if not isinstance(err, Exception):
                raise
            for unit in units:
                _note_in_stderr(unit, f"this job did not run: {err}")
            log_error(f"collector {job.name}: its {len(units)} job(s) cannot run: {err}")
            return  # CAF's collector step fails, and CAF goes on with what does not depend on it
        environment: dict | None = {} if args.get("environment", "empty") == "empty" else None
        tracker.add(job, units, environment, args.get("max_running"))

    def _tracker_for(self, settings: RunnerSettings) -> Tracker:
        with self._lock:
            if self._tracker is None or self._tracker.closed:
                self._tracker = Tracker(settings)
            return self._tracker

    def _prepare(self, job: Any) -> None:
        """The (sub)job's directories, sandbox, input list and ``submit.sh``, exactly as CAF's ``Local`` leaves them."""
        Path(job.working_dir).mkdir(parents=True, exist_ok=True)
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        job.copy_input_sandbox_files_to_working_dir()
        job.dump_input_data()
        with open(self.get_submit_script_path(job), "w") as batch_file:
            print("#!/bin/bash", file=batch_file)
            self._add_wrapper_script_setup(job, batch_file)
            self._add_setup(job, batch_file)
            print(job.full_command, file=batch_file)
            self._add_wrapper_script_teardown(job, batch_file)

    def close(self) -> None:
        """Cancels what is still queued or running; its processes end. Called at exit and on Ctrl-C."""
        with self._lock:
            tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.close()


def _note_in_stderr(job: Any, text: str) -> None:
    """Says in the (sub)job's ``stderr``, where a user of CAF looks first, why it failed without its script's word."""
    try:
        with open(Path(job.working_dir, "stderr"), "a") as stderr:
            stderr.write(f"[caf-hpc] {text}\n")
    except OSError:
        pass  # the steering log says it too


def _check_backend_args(args: dict, where: str) -> None:
    """Refuses backend_args this backend cannot honour, naming each and what is allowed."""
    problems = []
    for key in args:
        if key not in BACKEND_ARGS:
            problems.append(f"unknown key {key!r}{did_you_mean(key, BACKEND_ARGS)}")
    if args.get("max_running") is not None and whole_number(args["max_running"], 1):
        problems.append(f"max_running must be a whole number of at least 1, got {args['max_running']!r}")
    if args.get("environment", "empty") not in ("empty", "worker"):
        problems.append(f"environment must be 'empty' or 'worker', got {args['environment']!r}")
    if problems:
        allowed = "; ".join(f"{k}: {v}" for k, v in BACKEND_ARGS.items())
        raise SettingsError(f"{where}: {'; '.join(problems)}. Allowed keys: {allowed}")


class _Unit:
    """One (sub)job as the tracker follows it."""

    def __init__(self, job: Any, parent: Any, task: protocol.CollectorTask, progress: StrategyProgress) -> None:
        self.job = job
        self.parent = parent
        self.task = task
        self.future: Any = None
        self.where: protocol.Where | None = None
        self.attempt: str | None = None
        self.lost: list = []
        self.walltime_lost: list = []  # lost to the walltime of their batch jobs: not counted against retries
        self.verdict: str | None = None  # why it failed, when the tracker decided it (lost too often)
        self.progress = progress  # its entry in the run record


#: CAF names a collector job ``<calibration>_<collection>_Iteration_<i>``.
_CAF_JOB_NAME = re.compile(r"^(?P<calibration>.+)_(?P<collection>[^_]+)_Iteration_(?P<iteration>\d+)$")


def _record_for(parent: Any, target: str, dashboard: str | None) -> tuple:
    """The run record of a collector job (``caf-hpc-run.json`` in its directory, ``kind`` "collector"),
    named as CAF named the job, and the label of its subjobs."""
    match = _CAF_JOB_NAME.match(str(parent.name))
    calibration, collection, iteration = (match["calibration"], match["collection"], int(match["iteration"])) \
        if match else (str(parent.name), str(parent.name), 0)
    record = RunProgress(calibration, iteration, parent.working_dir, target, dashboard=dashboard, kind="collector")
    return record, f"collector {collection}"


class Tracker:
    """A backend's (sub)jobs on one cluster: submits them, gathers what the cluster says, sets statuses on request.

    What arrives (a ``Started`` record through the backend's ``distributed.Queue``, a
    future's end, a worker's removal) waits in one inbox until a calibration thread
    asks (``refresh``); statuses are set there, under one lock, so that CAF's threads
    see them change only when they look.
    """

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self.client = clusters.client_for(settings)
        self.inbox = Inbox(self.client)
        self.units: dict[str, _Unit] = {}
        self.records: dict[int, RunProgress] = {}
        self.pending: deque[_Unit] = deque()
        self.limits: dict[int, int | None] = {}
        self.running: Counter = Counter()
        self.closed = False
        self._lock = threading.RLock()
        self._progress: dict[int, float] = {}
        self._idle_since: float | None = None  # since when jobs wait with no worker in the cluster
        self._next_wait_check = self._next_wait_note = 0.0
        interrupt.install_excepthook()  # Ctrl-C: one line naming what it stopped, not Python's traceback
        self._watch = _CollectorWatch(self)
        self._watch.__enter__()  # left in close(): Ctrl-C's exit waits until the jobs are cancelled
        self._watch.on_interrupt(self.close)
        _trackers.add(self)

    # ----------------------------------------------------------------- submitting (CAF's main thread)
    def add(self, parent: Any, jobs: list, environment: dict | None, max_running: int | None) -> None:
        record, label = _record_for(parent, clusters.worker_source(self.settings), clusters.dashboard(self.client))
        with self._lock:
            self.limits[id(parent)] = max_running
            self.records[id(parent)] = record
            new = []
            for job in jobs:
                key = f"caf-collector-{job.name}-{uuid.uuid4().hex[:12]}"
                task = protocol.CollectorTask(key, job.name, str(job.working_dir), str(job.output_dir),
                                              tuple(job.output_patterns), self.inbox.name, environment,
                                              Backend.submit_script)
                name = f"{label}/{job.id}" if job is not parent else label
                progress = record.strategy(name, key, Path(job.working_dir, "stdout"))
                unit = self.units[key] = _Unit(job, parent, task, progress)
                job.result = DaskResult(job, self, unit)
                job.status = "submitted"
                new.append(unit)
                self.inbox.watch(key)
            if parent.subjobs:
                parent.result = DaskResult(parent, self)
            self.pending.extend(new)
            self._feed()
        log_info(f"collector {parent.name}: {len(jobs)} job(s) queued on {self.settings.description}")

    def _feed(self) -> None:
        """Submits what waits, as far as each parent's ``max_running`` allows (under the lock)."""
        waiting: deque[_Unit] = deque()
        while self.pending:
            unit = self.pending.popleft()
            limit = self.limits.get(id(unit.parent))
            if limit is not None and self.running[id(unit.parent)] >= limit:
                waiting.append(unit)
                continue
            self.running[id(unit.parent)] += 1
            placed = collector_placement(self.client, self.settings, self._durations(unit.parent))
            unit.future = self.client.submit(run_collector_task, unit.task, key=unit.task.key, pure=False,
                                             priority=PRIORITY,
                                             **with_resources(self.client, placed,
                                                              resources.collector_options(self.settings)))
            unit.future.add_done_callback(partial(on_task_done, self.inbox, unit.task.key))
        self.pending = waiting

    # ----------------------------------------------------------------- statuses (CAF's calibration threads)
    def refresh(self) -> None:
        """Turns everything the cluster said since the last call into statuses.

        The reports of every (sub)job that ended since are fetched from the workers in one
        gather: one round trip each had made a ready() of CAF's, 3 s after the last, take
        seconds for a thousand trivial subjobs (5 ms each on a busy 2-core machine), and
        CAF's thread saw the step's end that much later.
        """
        if self.closed:
            return  # cancelled at exit or by Ctrl-C: CAF's threads, still polling, learn nothing more
        with self._lock:
            arrived = []
            while True:
                event = self.inbox.get(timeout=0)
                if event is None:
                    break
                arrived.append(event)
            reports = self._reports(arrived)
            for event in arrived:
                self._apply(event, reports)
            if self.pending:
                self._feed()
            self._check_waiting()

    def _check_waiting(self) -> None:
        """While jobs wait and the cluster has no worker at all: a line every ``_WAITING_EVERY`` s, and after
        ``worker_wait`` s the waiting jobs fail, naming the cluster (a batch queue that never starts a job)."""
        now = time.monotonic()
        if now < self._next_wait_check:
            return
        self._next_wait_check = now + _WAIT_CHECK_EVERY
        waiting = [u for u in self.units.values() if u.job._status == "submitted" and u.verdict is None]
        try:
            workers = self.client.scheduler_info(n_workers=-1).get("workers") if waiting else True
        except Exception:  # the scheduler went away: the jobs' futures end and say so
            return
        if workers:
            self._idle_since = None
            return
        if self._idle_since is None:
            self._idle_since, self._next_wait_note = now, now + _WAITING_EVERY
        if now - self._idle_since >= self.settings.worker_wait:
            for unit in waiting:
                unit.verdict = (f"found no worker to run it within {self.settings.worker_wait:g} s (worker_wait) on "
                                f"{clusters.worker_source(self.settings)}")
                if unit.future is not None:
                    unit.future.cancel()
        elif now >= self._next_wait_note:
            self._next_wait_note = now + _WAITING_EVERY
            log_info(f"collector: {len(waiting)} job(s) waiting {now - self._idle_since:.0f} s for a worker; "
                     f"{clusters.state(self.client, self.settings)}")

    def _reports(self, arrived: list) -> dict:
        """Task key -> the ``CollectorEnded`` its task returned (or why it could not be had), for every task
        in ``arrived`` that finished and whose (sub)job still waits for it."""
        finished = {}
        for event in arrived:
            if not isinstance(event, TaskDone) or event.status != "finished":
                continue
            unit = self.units.get(event.key)
            if unit is not None and unit.future is not None and unit.verdict is None \
                    and unit.job.status not in EXIT_STATUSES:
                finished[event.key] = unit.future
        if not finished:
            return {}
        # client.gather(asynchronous=True) is the coroutine, run on the client's loop so that it can time out
        # (a sync gather cannot: a result lost with its worker would be computed again, the job run again).
        gathering = asyncio.run_coroutine_threadsafe(self.client.gather(finished, asynchronous=True),
                                                     dask_adapter.client_event_loop(self.client))
        try:
            return gathering.result(timeout=_RESULT_WAIT)
        except Exception:  # a result is gone with its worker, or the cluster: each on its own, so only those fail
            gathering.cancel()
        reports: dict = {}
        for key, future in finished.items():
            try:
                reports[key] = future.result(timeout=_RESULT_WAIT)
            except Exception as err:  # its result is gone with the cluster
                reports[key] = err
        return reports

    def _apply(self, event: Any, reports: dict) -> None:
        unit = self.units.get(getattr(event, "key", ""))  # "": an event of no task (CtrlC)
        if unit is None:
            return
        job = unit.job
        if job.status in EXIT_STATUSES:
            return  # CAF's ready() caches an exit status: it never changes again
        if isinstance(event, protocol.Started):
            unit.where, unit.attempt = event.where, event.attempt
            job.status = "running"
            unit.progress.started(event.attempt, event.where)
        elif isinstance(event, WorkerLost):
            self._lost(unit, event.worker)
        elif isinstance(event, TaskDone):
            self.running[id(unit.parent)] -= 1
            self.inbox.forget(unit.task.key)
            self._ended(unit, event, reports.get(unit.task.key))
            unit.future = None
            self._note_progress(unit.parent)

    def _durations(self, parent: Any) -> list:
        """How long the (sub)jobs of ``parent`` that ended so far ran (for placement by walltime)."""
        return [attempt["finished"] - attempt["started"]
                for u in self.units.values() if u.parent is parent and u.progress is not None
                for attempt in u.progress.entry["attempts"]
                if attempt.get("outcome") == "ended" and attempt.get("started") and attempt.get("finished")]

    def _lost(self, unit: _Unit, worker: str) -> None:
        where = unit.where.label() if unit.where is not None else f"worker {worker}"
        placement = Placement.of(self.client, self.settings)
        walltime = placement.walltime_loss(worker) if placement is not None else None
        (unit.walltime_lost if walltime else unit.lost).append(where)
        if unit.attempt is not None:
            unit.progress.lost(0, walltime)
        else:
            unit.progress.lost_unseen(worker, walltime)
        unit.attempt = None
        if walltime and len(unit.walltime_lost) < WALLTIME_LOSSES:
            log_warning(f"collector job {unit.job.name}: lost its worker ({where}) {walltime}; running it again, "
                        "which does not count toward retries, its partial files removed first")
        elif walltime:
            unit.verdict = (f"was killed at its batch job's walltime {len(unit.walltime_lost)} times "
                            f"({'; '.join(unit.walltime_lost)}): it needs more time than a job of "
                            f"{clusters.worker_source(self.settings)} has left when it starts")
            if unit.future is not None:
                unit.future.cancel()
        elif len(unit.lost) > self.settings.retries:
            unit.verdict = (f"lost its worker {len(unit.lost)} time(s) ({'; '.join(unit.lost)}), more than "
                            f"retries={self.settings.retries} allows. This is a failure of the cluster, not of the "
                            f"job: {clusters.worker_source(self.settings)}")
            if unit.future is not None:
                unit.future.cancel()
        else:
            log_warning(f"collector job {unit.job.name}: lost its worker ({where}); running it again "
                        f"(retry {len(unit.lost)} of {self.settings.retries}), its partial files removed first")

    def _ended(self, unit: _Unit, done: TaskDone, report: Any) -> None:
        job = unit.job
        ended: protocol.CollectorEnded | None = None
        if done.status == "finished":
            if isinstance(report, protocol.CollectorEnded):
                ended = report
            else:  # its result is gone with the cluster
                done = TaskDone(done.key, "error", repr(report))
        if ended is not None and ended.where is not None:
            unit.where = ended.where
        reason = self._failure(unit, done, ended)
        if unit.attempt is None and ended is not None:  # ended before its Started record was read
            unit.progress.started(ended.attempt, ended.where)
        unit.progress.ended("COMPLETED" if reason is None else "FAILED", [], ended, reason)
        self._finish_record(unit.parent)
        if reason is None:
            job.status = "completed"
            return
        job.status = "failed"
        if ended is None or ended.unstartable or ended.error:  # its script said nothing of this
            _note_in_stderr(job, f"this job {reason}")
        log_error(f"collector job {job.name} {reason}.\n  {log_excerpt(Path(job.working_dir, 'stderr'))}\n"
                  f"  stdout: {Path(job.working_dir, 'stdout')}")

    def _failure(self, unit: _Unit, done: TaskDone, ended: protocol.CollectorEnded | None) -> str | None:
        """Why the (sub)job failed, or None if it completed with its output."""
        where = unit.where.label() if unit.where is not None else "no worker yet"
        if unit.verdict:
            return unit.verdict
        if ended is None:
            if done.status == "cancelled":
                return "was cancelled"
            return (f"ended without a report from its worker ({where}): the Dask task ended {done.status} "
                    f"({done.error}). This is a failure of the cluster, not of the job")
        if ended.unstartable:
            return f"could not start: {ended.unstartable}"
        if ended.error:
            return f"could not be supervised on {where}:\n{ended.error}"
        if ended.cancelled:
            return "was cancelled"
        if ended.returncode:
            return f"exited with code {ended.returncode} on {where}"
        patterns = unit.task.output_patterns
        if patterns and not ended.outputs:
            return (f"exited with code 0 on {where} but left no file matching its output_patterns "
                    f"{list(patterns)} in {unit.task.output_dir}: CAF would find no collector output there")
        return None

    def _finish_record(self, parent: Any) -> None:
        jobs = list(parent.subjobs.values()) or [parent]
        ends = [u.progress.entry["final_state"] for u in self.units.values() if u.parent is parent]
        if len(ends) == len(jobs) and all(ends):
            self.records[id(parent)].finish("COMPLETED" if all(e == "COMPLETED" for e in ends) else "FAILED")

    def _note_progress(self, parent: Any) -> None:
        jobs = list(parent.subjobs.values()) or [parent]
        done = sum(1 for j in jobs if j._status in EXIT_STATUSES)
        failed = sum(1 for j in jobs if j._status == "failed")
        now = time.monotonic()
        if done < len(jobs) and now - self._progress.get(id(parent), 0.0) < _PROGRESS_EVERY:
            return
        self._progress[id(parent)] = now
        running = sum(1 for j in jobs if j._status == "running")
        log_info(f"collector {parent.name}: {done}/{len(jobs)} job(s) done"
                 + (f", {failed} failed" if failed else "") + (f", {running} running" if running else ""))

    # ----------------------------------------------------------------- the end
    def close(self) -> None:
        """Cancels every (sub)job still queued or running and lets the inbox go."""
        with self._lock:
            if self.closed:
                return
            if interrupt.interrupted() and self._watch.what_runs():
                self._watch.stopped()  # the line Ctrl-C prints names the jobs it stopped
            self.closed = True
            self.pending.clear()
            futures = [u.future for u in self.units.values() if u.future is not None and not u.future.done()]
        try:
            if futures and self.client.status == "running":
                self.client.cancel(futures)
                _wait_for_end(futures)
        except Exception:  # the cluster is gone: its processes went with it
            pass
        self._fail_unfinished()
        self.inbox.close()
        self._watch.__exit__(None, None, None)

    def _fail_unfinished(self) -> None:
        """Every (sub)job not ended is ``failed``, so that CAF's calibration thread, which polls on, sees its
        collector step end instead of waiting for ever (a program that catches Ctrl-C waits for that thread).

        Set as ``_status``, CAF's own attribute, not through the setter: that logs an error per job,
        a thousand lines for jobs the user stopped on purpose."""
        with self._lock:
            for unit in self.units.values():
                if unit.job._status not in EXIT_STATUSES:
                    unit.job._status = "failed"
                    unit.progress.ended("FAILED", [], None, "cancelled: Ctrl-C or the end of the steering script")
            for record in self.records.values():
                if record.data["final_state"] is None:
                    record.finish("FAILED")


class _CollectorWatch(interrupt.Run):
    """The tracker as Ctrl-C sees it: stopped by cancelling its jobs, named by those still unfinished."""

    def __init__(self, tracker: Tracker) -> None:
        super().__init__("collector")
        self.tracker = weakref.proxy(tracker)

    def what_runs(self) -> str:
        try:
            units = list(self.tracker.units.values())
        except ReferenceError:
            return ""
        left = [u for u in units if u.job._status not in EXIT_STATUSES]
        names = sorted({u.parent.name for u in left})
        return f"{len(left)} collector job(s) of {', '.join(names)}" if left else ""


#: How long cancelled collector tasks get to stop their scripts before the cluster may close.
_CANCEL_WAIT = 10.0


def _wait_for_end(futures: list) -> None:
    deadline = time.monotonic() + _CANCEL_WAIT
    while time.monotonic() < deadline and not all(f.done() for f in futures):
        time.sleep(0.05)


_trackers: weakref.WeakSet[Tracker] = weakref.WeakSet()


def close_all() -> None:
    """At exit: CAF never cancels its jobs, so the backend does, before the clusters close."""
    for tracker in list(_trackers):
        tracker.close()


atexit.register(close_all)  # registered after clusters' own: runs before it


def backend_for(site: str | None = None, *, backend_args: dict | None = None, **settings: Any) -> DaskBackend:
    """A ``DaskBackend`` bound to ``site`` (a name or YAML file), ``address=`` or other settings.

    The settings are the runner's (``runner_for``), read the same way (arguments, then
    the environment, then the site); a backend and a runner with the same target share
    one cluster in the process.
    """
    return DaskBackend(backend_args=backend_args, settings=bound_settings(site, **settings))


__all__ = ["DaskBackend", "DaskResult", "backend_for", "close_all"]
