"""``DaskAlgorithmsRunner``: CAF's algorithm step on a Dask cluster. The start and end of a strategy's path.

    (this process) -> Dask worker (``caf_hpc.worker.task``) -> strategy child
    (``caf_hpc.child.process``) -> Dask worker -> (this process)

CAF builds the runner with ``cls(name=...)``, sets its attributes and calls
``run(iov, iteration)``. Each algorithm's strategy is submitted as one Dask task, in
list order; the next one only after the previous one ended, because it reads the
payloads the previous one committed. The records the worker puts as the strategy runs
(``caf_hpc.protocol``) arrive through the run's ``distributed.Queue``, and the results
in them are appended to ``results`` as they arrive.

A strategy ends one way: its task's return value (``protocol.Ended``), which says how
many records the attempt put; the runner reads the queue on until it has them all, and
judges. The only other end is a lost worker, one too many (``retries``) or the one Dask
gave up on (``KilledWorker``). The first ``FAILED`` final state ends the run; a strategy
that raises, crashes or ends without a final state raises ``RunnerError``.

The inbox (``Inbox``) is here too: the one wait of the runner and of the collector
backend (``steering.backend``), for the queue's records and for this process's events.
"""
from __future__ import annotations

import asyncio
import queue
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from distributed import KilledWorker, Queue

from .. import dask_adapter, interrupt, protocol, resources
from ..basf2_compat import AlgorithmsRunner, RunnerError, log_debug, log_error, log_warning
from ..worker.task import run_strategy_task, start_preloading
from . import clusters, shipping
from .directory_lock import DirectoryInUse, DirectoryLock
from .logs import log_excerpt
from .placement import WALLTIME_LOSSES, Placement, strategy_placement, with_resources
from .progress import RunProgress, StrategyProgress
from .settings import RunnerSettings, resolve_for_run
from .worker_events import WorkerLost, WorkerWatch

#: How long the runner waits for an event before it looks at the strategy again (waiting notes, worker_wait).
_QUIET_WAIT = 30.0
#: How long taking a finished task's end (its return value, from the worker that holds it) may take.
_RESULT_WAIT = 30.0
#: How long the records an end counts may take to arrive once the end is here. They are in the
#: scheduler's queue already (each put was acknowledged before the task returned): this bounds
#: only the reading of them, one round trip each.
_DRAIN_WAIT = 30.0
#: After Ctrl-C: how long the cancelled task's end may take to be told (its callback must run before
#: the interpreter's thread pools stop taking work).
_CANCEL_WAIT = 10.0
#: A strategy without a worker says so after this long, and then every ``_WAITING_EVERY`` s.
_WAITING_FIRST = 2.0
_WAITING_EVERY = 30.0


# --------------------------------------------------------------------------- the inbox
#: Put by the runner itself: tells the reader to stop, after every record put before it.
_CLOSE = b"caf-hpc-close"
_CLOSE_WAIT = 15.0
#: How long the queue of a run stopped by Ctrl-C stays, for the last records of its cancelled strategy:
#: the task sees the cancellation within a second, and gives the strategy's process at most twice 5 s to end.
LINGER = 15.0


@dataclass(frozen=True)
class TaskFinished:
    """The task of ``key`` finished on its worker (its future's first completion): its attempt runs no more,
    whatever becomes of the end it returned. Should the worker holding that end be lost before the runner
    takes it, Dask computes the task again, which needs a worker (``worker_wait`` bounds the wait)."""

    key: str


@dataclass(frozen=True)
class TaskDone:
    """A Dask task of ours ended (``status``: finished, error, cancelled, lost).

    ``end`` is what a strategy's task returned (``take_end``); a collector's is gathered
    by the backend itself. ``lost_worker`` is the worker named by a ``KilledWorker``: the
    scheduler gave up on the task when that worker was lost, which is one more lost
    worker for the runner to count.
    """

    key: str
    status: str
    error: str | None = None
    lost_worker: str | None = None
    end: protocol.Ended | None = None


@dataclass(frozen=True)
class CtrlC:
    """The steering script was interrupted (Ctrl-C) while this run went on in a thread of its own."""


@dataclass(frozen=True)
class Unreadable:
    """The run's queue could not be read any more (the scheduler went away)."""

    error: str


Event = protocol.Started | protocol.Frames | TaskFinished | TaskDone | WorkerLost | Unreadable | CtrlC


class Inbox:
    """The run's queue and the runner's own events, read with one ``get``."""

    def __init__(self, client: Any) -> None:
        self._local: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._gone = False
        self._keys: set = set()
        self.queue = Queue(f"caf-hpc-{uuid.uuid4().hex[:16]}", client=client)
        self.name = self.queue.name
        self._reader = asyncio.run_coroutine_threadsafe(self._read(), dask_adapter.client_event_loop(client))
        self._watch = WorkerWatch.of(client)
        self._watch.add(self)

    async def _read(self) -> None:
        while True:
            try:
                # No timeout: a read that times out at the scheduler is logged there as an ERROR with its
                # traceback ("Exception while handling op queue_get"), every time, on the user's terminal.
                # A read waits until a record comes, the run closes the queue with _CLOSE, or the
                # connection to the scheduler drops, which fails it at once.
                data = await self.queue.get(asynchronous=True)
            except Exception as err:  # the scheduler or the client went away
                self._gone = True  # before the runner can learn of it: close() must not wait on the queue
                self._local.put(Unreadable(f"{type(err).__name__}: {err}"))
                return
            if data == _CLOSE:
                return
            self._local.put(protocol.from_wire(data))

    def put(self, event: Event) -> None:
        """An event of this process (from any thread, or the client's loop)."""
        self._local.put(event)

    def get(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return self._local.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for_task_done(self, key: str, timeout: float) -> None:
        """Waits (at most ``timeout`` s) for the ``TaskDone`` of ``key``, dropping other events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.get(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(event, TaskDone) and event.key == key:
                return

    def watch(self, key: str) -> None:
        """Reports the removal of the worker running task ``key`` as a ``WorkerLost``."""
        self._keys.add(key)

    def forget(self, key: str) -> None:
        self._keys.discard(key)

    def watches(self, key: str) -> bool:
        return key in self._keys

    def close(self, linger: float = 0.0) -> None:
        """Stops reading after every record already put, then lets the queue go.

        ``linger``: a strategy was just cancelled (Ctrl-C), and its task on the worker, which
        learns of it within a second and then stops its process, still puts its last records
        into the queue. A queue let go before that makes the scheduler log an error for each
        put. So the queue stays ``linger`` s, and is let go from a thread of its own; a
        process that is ending takes it along with its cluster.
        """
        self._watch.remove(self)
        if linger > 0:
            timer = threading.Timer(linger, self._let_go)
            timer.daemon = True
            timer.start()
        else:
            self._let_go()

    def _let_go(self) -> None:
        if not self._gone:  # else there is nothing to tidy at a scheduler that is gone
            try:
                # through the queue itself, so that the reader has no read pending when the queue is
                # released (a read of a released queue fails at the scheduler, in its log)
                if not self._reader.done():
                    self.queue.put(_CLOSE, timeout=_CLOSE_WAIT, callback_timeout=_CLOSE_WAIT)
                self._reader.result(timeout=_CLOSE_WAIT)
            except Exception:
                self._reader.cancel()  # the scheduler is gone or hung: nothing to be tidy for
            try:
                self.queue.close()  # the only holder: the queue goes with it
            except Exception:
                pass


async def take_end(inbox: Inbox, key: str, future: Any, client: Any) -> None:
    """On the client's loop: waits for a strategy's task and puts its ``TaskDone`` with what it returned.

    Taken in the loop the moment the client hears that the task finished: one round trip
    to the worker holding it, with no thread in between (a done-callback runs in a thread
    of its own, and the runner's taking of the result would be one more hop). Should that
    worker be lost first, Dask computes the task again, and the second computation
    returns the first one's end without running anything (``worker.task._ended_before``);
    the runner bounds that wait (``_RESULT_WAIT``).
    """
    try:
        end = await client.gather(future, asynchronous=True)
    except asyncio.CancelledError:
        if future.status != "cancelled":
            return  # this coroutine was stopped (the client closing), not the task
        inbox.put(TaskDone(key, "cancelled", "cancelled"))
    except Exception as err:
        lost = err.last_worker.address if isinstance(err, KilledWorker) else None
        status = future.status if future.status != "finished" else "error"
        inbox.put(TaskDone(key, status, repr(err), lost))
    else:
        if isinstance(end, protocol.Ended):
            inbox.put(TaskDone(key, "finished", end=end))
        else:
            inbox.put(TaskDone(key, "error", f"it returned {end!r}, not the end of a strategy"))


def on_task_done(inbox: Inbox, key: str, future: Any) -> None:
    """Future callback: tells the runner that the strategy's task ended, with its error if any."""
    error = lost_worker = None
    if future.status == "error":
        try:
            exception = future.exception(timeout=5)
            error = repr(exception)
            if isinstance(exception, KilledWorker):
                lost_worker = exception.last_worker.address
        except Exception as err:  # the reason is only for the message
            error = repr(err)
    inbox.put(TaskDone(key, future.status, error, lost_worker))


# --------------------------------------------------------------------------- one strategy
class StrategyStream:
    """Collects one strategy's records and events; keeps only the current attempt's.

    Dask runs a task again elsewhere when its worker is lost, so records carry the id
    of their attempt. An attempt is lost when the scheduler removes its worker (a
    ``WorkerLost``) or when another attempt shows up; its results are dropped, so that
    after the run ``results`` hold exactly the attempt that finished. A record that a
    lost worker sent before it was lost, arriving after the loss, starts no attempt.

    The stream is finished when its task ended and, if the task returned its end, when
    every record that end counts has arrived, and after them the frames the end carries;
    or when the queue cannot be read.
    """

    def __init__(self, key: str, algorithm_name: str, results: list,
                 progress: StrategyProgress | None = None) -> None:
        self.key = key
        self.progress = progress
        self.algorithm_name = algorithm_name
        self.results = results
        self.attempt: str | None = None
        self.where: protocol.Where | None = None
        self.waiting_since = time.monotonic()  # for a worker, while no attempt runs
        self.next_waiting_note = self.waiting_since + _WAITING_FIRST
        self.lost: list[str] = []              # where each lost attempt ran
        self.walltime_lost: list[str] = []     # where each attempt lost to its job's walltime ran: not a retry
        self.placement: Placement | None = None  # tells a loss at the walltime (batch sites with one)
        self.walltime_attempts: set = set()    # attempts lost to the walltime
        self.lost_workers: set = set()         # their addresses: a late record from one is not a new attempt
        self.given_up: set = set()
        self.received: Counter = Counter()     # records read, per attempt
        self.final_state: str | None = None
        self.exception: str | None = None
        self.violation: str | None = None
        self.end: protocol.Ended | None = None
        self.end_frames_read = False
        self.task_done: TaskDone | None = None
        self.end_pending = False  # the task finished on its worker; its end is being taken
        self.task_done_at: float | None = None
        self.future_done_at: float | None = None  # when the runner saw the task ended without its end yet
        self.unreadable: str | None = None

    @property
    def finished(self) -> bool:
        """Nothing more can come: the task ended and every record its end counts is here."""
        if self.unreadable:
            return True
        if self.task_done is None:
            return False
        return self.end is None or self.missing == 0

    @property
    def missing(self) -> int:
        """Records the end counts that have not arrived yet."""
        return max(0, self.end.records - self.received[self.end.attempt]) if self.end is not None else 0

    def ended(self, done: TaskDone, end: protocol.Ended | None) -> None:
        """The task ended: ``end`` is what it returned (None when it returned nothing: an error, a
        cancellation, Dask giving up after a lost worker)."""
        self.task_done, self.task_done_at, self.end = done, time.monotonic(), end
        if done.lost_worker is not None:  # Dask gave up on the task: its loss may come before the scheduler's
            self._lose_worker(done.lost_worker)
        if end is not None and end.records == 0 and end.attempt != self.attempt and end.attempt not in self.given_up:
            self._start(end.attempt, end.where)  # an attempt that put nothing (not started, or all sent with its end)
        self._read_end_frames()

    def _read_end_frames(self) -> None:
        """The frames the end carries, once every record it counts is here: they came after them."""
        end = self.end
        if end is None or not end.frames or self.end_frames_read or self.missing:
            return
        self.end_frames_read = True
        self.consume(protocol.Frames(end.key, end.attempt, end.where, end.frames))

    def consume(self, event: protocol.Record | WorkerLost | Unreadable) -> None:
        if isinstance(event, Unreadable):
            self.unreadable = event.error
            return
        if event.key != self.key:
            return  # an earlier strategy's late record or event
        if isinstance(event, WorkerLost):
            self._lose_worker(event.worker)
            return
        self.received[event.attempt] += 1
        if event.attempt in self.given_up:
            return  # a late record of an attempt given up
        if event.attempt != self.attempt:  # a new attempt
            if event.where.worker is not None and event.where.worker in self.lost_workers:
                self.given_up.add(event.attempt)  # sent before its worker was lost, arriving after the loss
                return
            self._start(event.attempt, event.where)
        if isinstance(event, protocol.Frames):
            for frame in event.frames:
                for message in protocol.loads(frame):
                    self._message(message)
            if self.progress is not None:
                self.progress.results(self.results)
        self._read_end_frames()

    def finished_on_worker(self) -> None:
        """The task finished, its end not taken yet: from now on no attempt runs, and a wait for the end that
        outlasts the task's worker is a wait for a worker to compute it again."""
        if self.task_done is None and not self.end_pending:
            self.end_pending = True
            self.waiting_since = time.monotonic()

    def _start(self, attempt: str, where: protocol.Where) -> None:
        if self.attempt is not None:
            self._lose_current()  # the scheduler ran the task again elsewhere
        self.end_pending = False
        self.attempt, self.where = attempt, where
        if self.progress is not None:
            self.progress.started(attempt, where)

    def cut_by_walltime(self) -> tuple | None:
        """``(where, why)`` when the task ended with the end of an attempt its batch job's walltime cut: one the
        runner gave up as lost to the walltime, or one killed by a signal on a worker at its job's end. Dask
        has that end and runs nothing again; the runner submits the strategy again."""
        end = self.end
        if self.placement is None or end is None or end.where is None or end.where.worker is None:
            return None
        lost_to_walltime = end.attempt in self.given_up and end.attempt in self.walltime_attempts
        killed = end.returncode is not None and end.returncode < 0 and end.attempt not in self.given_up
        if not (lost_to_walltime or killed):
            return None
        why = self.placement.walltime_loss(end.where.worker)
        return (end.where.label(), why) if why else None

    def _message(self, message: protocol.ChildMessage) -> None:
        if isinstance(message, protocol.Result):
            self.results.append(message.value)
        elif isinstance(message, protocol.FinalState):
            self.final_state = message.state
        elif isinstance(message, protocol.Raised):
            self.exception = message.text
        else:
            self.violation = message.text

    def _lose_worker(self, worker: str) -> None:
        if worker in self.lost_workers:
            return  # told twice
        self.lost_workers.add(worker)
        walltime = self.placement.walltime_loss(worker) if self.placement is not None else None
        if self.attempt is None:
            (self.walltime_lost if walltime else self.lost).append(f"worker {worker}")  # before its first record
            if self.progress is not None:
                self.progress.lost_unseen(worker, walltime)
        elif self.where is not None and self.where.worker == worker:
            self._lose_current(walltime)
        # else: the removed worker ran an attempt given up already

    def _lose_current(self, walltime: str | None = None) -> None:
        where = _where_text(self.where)
        (self.walltime_lost if walltime else self.lost).append(where)
        if walltime and self.attempt is not None:
            self.walltime_attempts.add(self.attempt)
        why = (f" {walltime}; it runs again, which does not count toward retries" if walltime else "")
        log_warning(f"lost the worker running {self.algorithm_name} ({where}){why}; "
                    f"dropping {len(self.results)} result(s) of the lost attempt")
        self.given_up.add(self.attempt)
        if self.progress is not None:
            self.progress.lost(len(self.results), walltime)
        self.results.clear()
        self.final_state = self.exception = self.violation = None
        self.attempt, self.where = None, None
        self.waiting_since = time.monotonic()
        self.next_waiting_note = self.waiting_since + _WAITING_FIRST


class CutByWalltime(Exception):
    """A strategy's task ended with the end of an attempt that its batch job's walltime cut: submit it again."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(where, why)
        self.where, self.why = where, why


def _walltime_message(cut: list, settings: RunnerSettings) -> str:
    return (f"was killed at its batch job's walltime {len(cut)} times ({'; '.join(cut)}): it needs more time than "
            f"a job of {clusters.worker_source(settings)} has left when it starts; give the site a longer "
            "cluster.walltime, or the algorithm's expected duration (expected_durations)")


def _where_text(where: protocol.Where | None) -> str:
    """Where an attempt runs, for a message."""
    return where.label() if where is not None else "no worker yet"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class DaskAlgorithmsRunner(AlgorithmsRunner):
    """Runs a calibration's algorithm strategies in order on a Dask cluster.

    Use the class itself for the local default (``cal.algorithms_runner =
    DaskAlgorithmsRunner``), or ``runner_for(...)`` for a scheduler address, a site
    config, time limits or algorithm factories.
    """

    #: Settings given to ``runner_for``; the environment fills in the rest at run time.
    overrides: ClassVar[dict] = {}

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.ignored_runs: list = []
        #: The run's Dask futures, held until its end. Letting go of a future sends the scheduler
        #: a release at once, and the client sends its next message no sooner than 10 ms after
        #: that one (its batching interval): a submission within those 10 ms would wait for it.
        #: At the run's end they go together, in one message.
        self._tasks: list = []
        #: What each algorithm of the run asks of its worker, checked before the first submission.
        self._resources = resources.RunPlan(name)

    @classmethod
    def settings(cls) -> RunnerSettings:
        """The settings a run uses: arguments, then environment, then the site's ``runner`` section."""
        return resolve_for_run(cls.overrides)

    def run(self, iov: Any, iteration: int) -> None:
        self.final_state = None
        if interrupt.interrupted():
            self.final_state = self.FAILED  # the steering script is ending by Ctrl-C: nothing new starts
            return
        interrupt.install_excepthook()
        try:
            lock = DirectoryLock.acquire(self.output_dir, f"calibration {self.name}", beside=True)
        except DirectoryInUse as err:
            self.final_state = self.FAILED
            raise RunnerError(f"calibration {self.name}: {err}") from None
        try:
            with interrupt.Run(self.name) as watch:
                try:
                    self._run_locked(iov, iteration, watch)
                except KeyboardInterrupt:  # Ctrl-C, in the thread running this
                    self.final_state = self.FAILED
                    watch.stopped()
                    raise
        finally:
            lock.release()

    def _run_locked(self, iov: Any, iteration: int, watch: interrupt.Run) -> None:
        settings = self.settings()
        algorithms = self._algorithms_to_run()
        params = shipping.strategy_params(self)
        shipping.register_local_modules(settings.ship_modules)
        # every algorithm is packed (or refused) and the cluster reached before anything is submitted
        try:
            preload = shipping.preload_for(settings.preload)
            packed = [(alg, shipping.pack(alg, params, iov, iteration, settings.factories.get(alg.name),
                                          settings.preload), shipping.modules_by_reference(alg))
                      for alg in algorithms]
            self._resources = resources.plan_run(self.name, [alg.name for alg in algorithms], settings)
            client = clusters.client_for(settings)
            resources.check_workers(self._resources, client, settings)
            if settings.fork_server:
                start_preloading(client, preload)
            inbox = Inbox(client)
        except Exception:
            self.final_state = self.FAILED
            raise
        watch.on_interrupt(lambda: inbox.put(CtrlC()))
        progress = RunProgress(self.name, iteration, self.output_dir, clusters.worker_source(settings), iov,
                               clusters.dashboard(client))
        stopped = False
        try:
            for algorithm, payload, imports in packed:
                watch.algorithm = algorithm.name
                try:
                    state = self._run_strategy(client, inbox, settings, preload, progress, algorithm.name, payload,
                                               imports)
                except interrupt.Interrupted:  # Ctrl-C, while this ran in a thread of its own
                    self.final_state = self.FAILED
                    stopped = True
                    watch.stopped()  # the one line the user sees names it
                    return
                except KeyboardInterrupt:
                    stopped = True
                    raise
                if state == self.FAILED:
                    self.final_state = self.FAILED
                    log_error(f"{self.name}: algorithm {algorithm.name} FAILED; later algorithms are not run.\n"
                              f"  {log_excerpt(shipping.log_file(self.output_dir, algorithm.name))}")
                    return
            self.final_state = self.COMPLETED
        finally:
            self._tasks.clear()
            progress.finish(self.final_state or self.FAILED)
            # a strategy stopped by Ctrl-C may still send its last records: its queue stays a while
            inbox.close(linger=LINGER if stopped else 0.0)

    def _algorithms_to_run(self) -> list:
        """``self.algorithms``, or RunnerError when they cannot run as CAF means them to."""
        algorithms = list(self.algorithms or [])
        if not algorithms:
            self.final_state = self.FAILED
            raise RunnerError(f"calibration {self.name}: no algorithms to run (runner.algorithms is "
                              f"{self.algorithms!r}); CAF sets them from the Calibration before run()")
        names = [getattr(algorithm, "name", repr(algorithm)) for algorithm in algorithms]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            self.final_state = self.FAILED
            raise RunnerError(f"calibration {self.name}: algorithm name(s) {', '.join(twice)} appear more than once; "
                              "their results (runner.results is keyed by name) and logs (<output_dir>/<name>_stdout) "
                              "would mix. Give each algorithm a name of its own")
        return algorithms

    def _run_strategy(self, client: Any, inbox: Inbox, settings: RunnerSettings, preload: protocol.Preload,
                      progress: RunProgress, name: str, payload: bytes, imports: tuple = ()) -> str:
        """Submits one strategy, streams its results into ``self.results[name]``; returns its final state.

        A strategy whose task ended with the end of an attempt cut by its batch job's walltime
        (``CutByWalltime``) is submitted again: Dask has its end and will not run it again itself.
        """
        cut: list[str] = []
        while True:
            try:
                return self._run_strategy_once(client, inbox, settings, preload, progress, name, payload, cut,
                                               imports)
            except CutByWalltime as err:
                cut.append(err.where)
                log_warning(f"{self.name}: the strategy of {name} was cut on {err.where} {err.why}; it runs again, "
                            "which does not count toward retries")
                if len(cut) >= WALLTIME_LOSSES:
                    self._fail(name, shipping.log_file(self.output_dir, name), _walltime_message(cut, settings))

    def _run_strategy_once(self, client: Any, inbox: Inbox, settings: RunnerSettings, preload: protocol.Preload,
                           progress: RunProgress, name: str, payload: bytes, cut: list, imports: tuple = ()) -> str:
        """One submission of a strategy (``cut``: where earlier ones were cut by the walltime; ``imports``: the
        installed modules its job is unpickled with, ``shipping.modules_by_reference``)."""
        if interrupt.interrupted():  # Ctrl-C came while this run was still getting its cluster
            raise interrupt.Interrupted()
        results = self.results.setdefault(name, [])
        results.clear()
        log_path = shipping.log_file(self.output_dir, name)
        key = f"caf-strategy-{name}-{uuid.uuid4().hex[:16]}"
        task = protocol.StrategyTask(key=key, algorithm_name=name, payload=payload, queue_name=inbox.name,
                                     log_path=str(log_path), output_dir=str(self.output_dir),
                                     timeout=settings.timeout, fork_server=settings.fork_server, preload=preload,
                                     input_files=tuple(str(path) for path in self.input_files or ()),
                                     memory_limit=self._resources.memory_limit(name), imports=imports)
        strategy_progress = progress.strategy(name, key, log_path)
        stream = StrategyStream(key, name, results, strategy_progress)
        stream.placement, placed = strategy_placement(client, settings, f"{self.name}: {name}", self.output_dir, name)
        stream.walltime_lost = list(cut)
        inbox.watch(key)
        future = client.submit(run_strategy_task, task, key=key, pure=False,
                               **with_resources(client, placed, self._resources.submit_options(name)))
        future.add_done_callback(lambda _: inbox.put(TaskFinished(key)))
        asyncio.run_coroutine_threadsafe(take_end(inbox, key, future, client), dask_adapter.client_event_loop(client))
        self._tasks.append(future)  # released at the run's end: see __init__
        log_debug(f"{self.name}: submitted {name} as task {key}")
        try:
            state = self._follow(client, inbox, settings, name, log_path, stream, future)
        except RunnerError as err:
            strategy_progress.ended(self.FAILED, results, stream.end, str(err))
            raise
        except (interrupt.Interrupted, KeyboardInterrupt):
            strategy_progress.ended(self.FAILED, results, stream.end, "interrupted (Ctrl-C)")
            raise
        except CutByWalltime as err:
            if stream.progress is not None:
                stream.progress.cut(f"cut {err.why}")
            raise
        finally:
            # Only the run may hold the future (``_tasks``, let go at its end). An error's traceback keeps
            # its frames' variables as long as the error lives (CAF keeps it), and while any client holds a
            # finished task's future, Dask runs the task again when its worker is lost: the strategy would run
            # a second time, long after its run ended.
            del future
        strategy_progress.ended(state, results, stream.end, None)
        return state

    def _follow(self, client: Any, inbox: Inbox, settings: RunnerSettings, name: str, log_path: Any,
                stream: StrategyStream, future: Any) -> str:
        """Streams the strategy's records into its results until it ended; returns how it ended."""
        key = stream.key
        try:
            while not stream.finished:
                event = inbox.get(timeout=self._quiet_limit(stream, settings))
                if event is None:
                    self._check_quiet(client, settings, name, log_path, stream, future)
                elif isinstance(event, CtrlC):
                    future.cancel()
                    inbox.wait_for_task_done(key, _CANCEL_WAIT)  # its callback must run before the interpreter's
                    raise interrupt.Interrupted()                # thread pools stop taking work
                elif isinstance(event, TaskDone):
                    if event.key == key:
                        stream.ended(event, event.end)
                elif isinstance(event, TaskFinished):
                    if event.key == key:
                        stream.finished_on_worker()
                else:
                    stream.consume(event)
                if len(stream.lost) > settings.retries:
                    self._fail(name, log_path, self._lost_message(stream, settings))
                if len(stream.walltime_lost) >= WALLTIME_LOSSES:
                    self._fail(name, log_path, _walltime_message(stream.walltime_lost, settings))
        finally:
            inbox.forget(key)
            if not future.done():
                future.cancel()
            del future  # not kept by an error's traceback: see _run_strategy
        cut = stream.cut_by_walltime()
        if cut is not None:
            raise CutByWalltime(*cut)
        return self._judge(name, log_path, stream, settings)

    @staticmethod
    def _quiet_limit(stream: StrategyStream, settings: RunnerSettings) -> float:
        """How long to wait for the next event before checking on the strategy."""
        now = time.monotonic()
        if stream.task_done_at is not None:
            until = stream.task_done_at + _DRAIN_WAIT
        elif stream.future_done_at is not None:
            until = stream.future_done_at + _RESULT_WAIT
        elif stream.attempt is None or stream.end_pending:
            until = min(stream.waiting_since + settings.worker_wait, stream.next_waiting_note)
        else:
            return _QUIET_WAIT  # running: its time limit is the worker's to keep (worker.task)
        return max(0.05, min(_QUIET_WAIT, until - now))

    def _check_quiet(self, client: Any, settings: RunnerSettings, name: str, log_path: Any,
                     stream: StrategyStream, future: Any) -> None:
        """After a quiet spell: fails when an ended strategy's end or records stopped coming, or no worker came in time.

        Waiting for a worker (busy with other calibrations, or a batch job still queued)
        is bounded by ``worker_wait``; a running attempt by its time limit, on the worker.
        """
        now = time.monotonic()
        if stream.task_done_at is not None:
            if now - stream.task_done_at >= _DRAIN_WAIT:
                self._fail(name, log_path, f"ended on {_where_text(stream.where)}, but {stream.missing} of the "
                           f"{stream.end.records if stream.end else 0} record(s) it put into the run's queue did not "
                           f"arrive within {_DRAIN_WAIT:g} s. This is a failure of the cluster, not of the algorithm: "
                           f"{clusters.worker_source(settings)}")
            return
        if future.done():  # the task ended, and its end has not come: its result is being taken
            if stream.future_done_at is None:
                stream.future_done_at = now
            elif now - stream.future_done_at >= _RESULT_WAIT:
                self._fail(name, log_path, f"ended on {_where_text(stream.where)}, but what its task returned could "
                           f"not be had within {_RESULT_WAIT:g} s (the worker holding it lost, and none to compute "
                           f"it again?). This is a failure of the cluster, not of the algorithm: "
                           f"{clusters.worker_source(settings)}")
            return
        if stream.attempt is not None and not stream.end_pending:
            return
        if now >= stream.next_waiting_note and stream.progress is not None:
            stream.progress.waiting(now - stream.waiting_since, clusters.state(client, settings))
            stream.next_waiting_note = now + _WAITING_EVERY
        if now - stream.waiting_since >= settings.worker_wait:
            if not self._resources.able_workers(client, name):
                self._fail(name, log_path, f"found no worker to run it within {settings.worker_wait:g} s "
                           f"(worker_wait) on {clusters.worker_source(settings)}"
                           + self._resources.wanted(name))
            stream.waiting_since = now  # workers exist, busy with other strategies: wait another round

    @staticmethod
    def _lost_message(stream: StrategyStream, settings: RunnerSettings) -> str:
        if len(stream.lost) > settings.retries:
            limit = f"more than retries={settings.retries} allows"
        else:  # the scheduler's own limit came first (it changed after the settings check)
            limit = (f"and its Dask scheduler gave up on it there (distributed.scheduler.allowed-failures is below "
                     f"retries={settings.retries})")
        walltime = (f" (and {len(stream.walltime_lost)} time(s) to its batch job's walltime, which retries do not "
                    "count)" if stream.walltime_lost else "")
        return (f"lost its worker {len(stream.lost)} time(s) ({'; '.join(stream.lost)}){walltime}, {limit}. This is "
                f"a failure of the cluster, not of the algorithm: {clusters.worker_source(settings)}")

    def _judge(self, name: str, log_path: Any, stream: StrategyStream, settings: RunnerSettings) -> str:
        """Turns how the child ended into CAF's outcome, as the reference runner does."""
        end = stream.end
        if stream.unreadable:
            self._fail(name, log_path, f"could not be followed: its Dask scheduler stopped answering "
                       f"(reading the run's queue failed: {stream.unreadable}). This is a failure of the "
                       f"cluster, not of the algorithm: {clusters.worker_source(settings)}")
        done = stream.task_done
        assert done is not None, "a stream is finished only with its task's end, or unreadable (failed above)"
        if end is None and done.lost_worker is not None:
            self._fail(name, log_path, self._lost_message(stream, settings))
        if end is None:
            self._fail(name, log_path, f"ended without a report from its worker ({_where_text(stream.where)}): "
                       f"the Dask task ended {done.status} ({done.error}). This is a failure "
                       "of the cluster, not of the algorithm")
        if end.attempt in stream.given_up:
            self._fail(name, log_path, f"ended on {end.where.label()}, but the scheduler lost that worker before it "
                       f"heard of the end, and its results were dropped as those of a lost attempt; the strategy is "
                       f"not run twice. This is a failure of the cluster, not of the algorithm: "
                       f"{clusters.worker_source(settings)}")
        if end.unstartable:
            self._fail(name, log_path, f"could not start: {end.unstartable}")
        if end.error:
            self._fail(name, log_path, f"could not be supervised on {_where_text(stream.where)}:\n{end.error}")
        if end.leftovers:
            log_warning(f"{self.name}: the strategy of {name} left {len(end.leftovers)} process(es) running on "
                        f"{_where_text(stream.where)}, ended after it: {'; '.join(end.leftovers)}")
        if end.out_of_memory:
            self._fail(name, log_path, f"{end.out_of_memory}, and was ended on {_where_text(stream.where)}. This is a "
                       f"failure of the algorithm, not of the cluster: {resources.more_memory_hint(name)}")
        if end.timed_out:
            self._fail(name, log_path, f"exceeded its time limit of {settings.timeout:g} s and was killed")
        if end.cancelled:
            self._fail(name, log_path, "was cancelled")
        if stream.violation:
            self._fail(name, log_path, f"broke CAF's strategy protocol: {stream.violation}")
        code = end.returncode
        if stream.exception:
            self._fail(name, log_path, f"raised {stream.exception}")
        if code is not None and code < 0:
            self._fail(name, log_path, f"was killed by {_signal_name(-code)} (exit code {code})")
        if code:
            self._fail(name, log_path, f"exited with code {code}"
                       + (f" after its final state {stream.final_state}" if stream.final_state else ""))
        if stream.final_state is None:
            self._fail(name, log_path, "exited without sending a final state")
        return stream.final_state

    def _fail(self, name: str, log_path: Any, what: str) -> NoReturn:
        """Marks the run FAILED and raises RunnerError naming the algorithm, the cause and its log."""
        self.final_state = self.FAILED
        raise RunnerError(f"The strategy of algorithm {name} (calibration {self.name}) {what}.\n"
                          f"  {log_excerpt(log_path)}")
