"""``DaskAlgorithmsRunner``: CAF's algorithm step on a Dask cluster. The start and end of a strategy's path.

    (this process) -> Dask worker (``caf_hpc.worker.task``) -> strategy child
    (``caf_hpc.child.process``) -> Dask worker -> (this process)

CAF builds the runner with ``cls(name=...)``, sets its attributes and calls
``run(iov, iteration)``. Each algorithm's strategy is submitted as one Dask task, in
list order; the next one only after the previous one sent its final state and its
task ended, because it reads the payloads the previous one committed. The records the
worker sends (``caf_hpc.protocol``) arrive through the run's ``distributed.Queue``; the
results in them are appended to ``results`` as they arrive. The first ``FAILED`` final
state ends the run; a strategy that raises, crashes or ends without a final state raises
``RunnerError``.
"""
from __future__ import annotations

import signal
import time
import uuid
from functools import partial
from typing import Any, ClassVar, Optional

from .. import protocol
from ..basf2_compat import AlgorithmsRunner, RunnerError, log_debug, log_error, log_warning
from ..worker.task import run_strategy_task, start_preloading
from . import clusters, events, interrupt, shipping
from .directory_lock import DirectoryInUse, DirectoryLock
from .logs import log_excerpt
from .progress import RunProgress, StrategyProgress
from .settings import RunnerSettings, resolve_for_run

#: How long the runner waits for a record before it checks its own deadlines again.
_QUIET_WAIT = 30.0
#: How long past the strategy's time limit the runner waits for the worker to report it.
_TIMEOUT_GRACE = 60.0
#: How long the last record of a task that ended may still be on its way.
_END_WAIT = 10.0
#: A strategy without a worker says so after this long, and then every ``_WAITING_EVERY`` s.
_WAITING_FIRST = 2.0
_WAITING_EVERY = 30.0


class StrategyStream:
    """Collects one strategy's records and events; keeps only the current attempt's.

    Dask runs a task again elsewhere when its worker is lost, so records carry the id
    of their attempt. An attempt is lost when the scheduler removes its worker (a
    ``WorkerLost``) or when another attempt shows up; its results are dropped, so that
    after the run ``results`` hold exactly the attempt that finished. A record that a
    lost worker sent before it was lost, arriving after the loss, starts no attempt.
    """

    def __init__(self, key: str, algorithm_name: str, results: list,
                 progress: Optional[StrategyProgress] = None) -> None:
        self.key = key
        self.progress = progress
        self.algorithm_name = algorithm_name
        self.results = results
        self.attempt: Optional[str] = None
        self.where: Optional[protocol.Where] = None
        self.attempt_started: Optional[float] = None
        self.waiting_since = time.monotonic()  # for a worker, while no attempt runs
        self.next_waiting_note = self.waiting_since + _WAITING_FIRST
        self.lost: list[str] = []              # where each lost attempt ran
        self.lost_workers: set = set()         # their addresses: a late record from one is not a new attempt
        self.given_up: set = set()
        self.final_state: Optional[str] = None
        self.exception: Optional[str] = None
        self.violation: Optional[str] = None
        self.end: Optional[protocol.Ended] = None
        self.task_done: Optional[events.TaskDone] = None
        self.task_done_at: Optional[float] = None
        self.unreadable: Optional[str] = None
        self.end_overdue = False

    def deadline(self, timeout: Optional[float]) -> Optional[float]:
        """When the running attempt is overdue: its time limit plus the grace for the worker to report it."""
        if self.attempt_started is None or not timeout:
            return None
        return self.attempt_started + timeout + _TIMEOUT_GRACE

    @property
    def finished(self) -> bool:
        """The last record arrived and the task ended; or the task ended and no record can come."""
        if self.unreadable:
            return True
        if self.task_done is None:
            return False
        return self.end is not None or self.task_done.status != "finished" or self.end_overdue

    def consume(self, event: events.Event) -> None:
        if isinstance(event, events.Unreadable):
            self.unreadable = event.error
            return
        if event.key != self.key:
            return  # an earlier strategy's late record or event
        if isinstance(event, events.TaskDone):
            self.task_done, self.task_done_at = event, time.monotonic()
            if event.lost_worker is not None:  # Dask gave up on the task: its loss may come before the event's
                self._lose_worker(event.lost_worker)
            return
        if isinstance(event, events.WorkerLost):
            self._lose_worker(event.worker)
            return
        if event.attempt in self.given_up:
            return  # a late record of an attempt given up
        if event.attempt != self.attempt:  # a new attempt (its start, or the end of one that could not start)
            if event.where.worker is not None and event.where.worker in self.lost_workers:
                self.given_up.add(event.attempt)  # sent before its worker was lost, arriving after the loss
                return
            if self.attempt is not None:
                self._lose_current()  # the scheduler ran the task again elsewhere
            self.attempt, self.attempt_started, self.where = event.attempt, time.monotonic(), event.where
            if self.progress is not None:
                self.progress.started(event.attempt, event.where)
        if isinstance(event, protocol.Frames):
            for frame in event.frames:
                for message in protocol.loads(frame):
                    self._message(message)
            if self.progress is not None:
                self.progress.results(self.results)
        elif isinstance(event, protocol.Ended):
            self.end = event

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
        if self.attempt is None:
            self.lost.append(f"worker {worker}")  # lost before its first record arrived
            if self.progress is not None:
                self.progress.lost_unseen(worker)
        elif self.where is not None and self.where.worker == worker:
            self._lose_current()
        # else: the removed worker ran an attempt given up already

    def _lose_current(self) -> None:
        where = _where(self.where)
        self.lost.append(where)
        log_warning(f"lost the worker running {self.algorithm_name} ({where}); "
                    f"dropping {len(self.results)} result(s) of the lost attempt")
        self.given_up.add(self.attempt)
        if self.progress is not None:
            self.progress.lost(len(self.results))
        self.results.clear()
        self.final_state = self.exception = self.violation = self.end = None
        self.attempt, self.where, self.attempt_started = None, None, None
        self.waiting_since = time.monotonic()
        self.next_waiting_note = self.waiting_since + _WAITING_FIRST


def _where(where: Optional[protocol.Where]) -> str:
    return where.describe() if where is not None else "no worker yet"


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
                                          settings.preload))
                      for alg in algorithms]
            client = clusters.client_for(settings)
            if settings.fork_server:
                start_preloading(client, preload)
            inbox = events.Inbox(client)
        except Exception:
            self.final_state = self.FAILED
            raise
        watch.on_interrupt(lambda: inbox.put(events.Interrupted()))
        progress = RunProgress(self.name, iteration, self.output_dir, clusters.describe(settings), iov,
                               clusters.dashboard(client))
        stopped = False
        try:
            for algorithm, payload in packed:
                watch.algorithm = algorithm.name
                try:
                    state = self._run_strategy(client, inbox, settings, preload, progress, algorithm.name, payload)
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
            inbox.close(linger=events.LINGER if stopped else 0.0)

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

    def _run_strategy(self, client: Any, inbox: events.Inbox, settings: RunnerSettings, preload: protocol.Preload,
                      progress: RunProgress, name: str, payload: bytes) -> str:
        """Submits one strategy, streams its results into ``self.results[name]``; returns its final state."""
        if interrupt.interrupted():  # Ctrl-C came while this run was still getting its cluster
            raise interrupt.Interrupted()
        results = self.results.setdefault(name, [])
        results.clear()
        log_path = shipping.log_file(self.output_dir, name)
        key = f"caf-strategy-{name}-{uuid.uuid4().hex[:16]}"
        task = protocol.StrategyTask(key, name, payload, inbox.name, str(log_path), str(self.output_dir),
                                     settings.timeout, settings.fork_server, preload,
                                     tuple(str(path) for path in self.input_files or ()))
        stream = StrategyStream(key, name, results, progress.strategy(name, key, log_path))
        inbox.watch(key)
        future = client.submit(run_strategy_task, task, key=key, pure=False)
        future.add_done_callback(partial(events.on_task_done, inbox, key))
        self._tasks.append(future)  # released at the run's end: see __init__
        log_debug(f"{self.name}: submitted {name} as task {key}")
        try:
            state = self._follow(client, inbox, settings, name, log_path, stream, future)
        except RunnerError as err:
            stream.progress.ended(self.FAILED, results, stream.end, str(err))
            raise
        except (interrupt.Interrupted, KeyboardInterrupt):
            stream.progress.ended(self.FAILED, results, stream.end, "interrupted (Ctrl-C)")
            raise
        finally:
            # Only the run may hold the future (``_tasks``, let go at its end). An error's traceback keeps
            # its frames' variables as long as the error lives (CAF keeps it), and while any client holds a
            # finished task's future, Dask runs the task again when its worker is lost: the strategy would run
            # a second time, long after its run ended.
            del future
        stream.progress.ended(state, results, stream.end, None)
        return state

    def _follow(self, client: Any, inbox: events.Inbox, settings: RunnerSettings, name: str, log_path: Any,
                stream: StrategyStream, future: Any) -> str:
        """Streams the strategy's records into its results until it ended; returns how it ended."""
        key = stream.key
        try:
            while not stream.finished:
                event = inbox.get(timeout=self._quiet_limit(stream, settings))
                if event is None:
                    self._check_quiet(client, settings, name, log_path, stream)
                    continue
                if isinstance(event, events.Interrupted):
                    future.cancel()
                    inbox.wait_for_task_done(key, _END_WAIT)  # its callback must run before the interpreter's
                    raise interrupt.Interrupted()             # thread pools stop taking work
                stream.consume(event)
                if len(stream.lost) > settings.retries:
                    return self._fail(name, log_path, self._lost_message(stream, settings))
                overdue = stream.deadline(settings.timeout)
                if overdue is not None and time.monotonic() > overdue:  # a strategy that never falls quiet
                    self._check_quiet(client, settings, name, log_path, stream)
        finally:
            inbox.forget(key)
            if not future.done():
                future.cancel()
            del future  # not kept by an error's traceback: see _run_strategy
        return self._judge(name, log_path, stream, settings)

    @staticmethod
    def _quiet_limit(stream: StrategyStream, settings: RunnerSettings) -> float:
        """How long to wait for the next event before checking on the strategy."""
        now = time.monotonic()
        if stream.task_done_at is not None:
            until = stream.task_done_at + _END_WAIT
        elif stream.attempt is None:
            until = min(stream.waiting_since + settings.worker_wait, stream.next_waiting_note)
        elif settings.timeout:
            until = stream.deadline(settings.timeout)
        else:
            return _QUIET_WAIT
        return max(0.05, min(_QUIET_WAIT, until - now))

    def _check_quiet(self, client: Any, settings: RunnerSettings, name: str, log_path: Any,
                     stream: StrategyStream) -> None:
        """After a quiet spell: fails when a running attempt is past its time limit, or no worker came in time.

        The time limit counts from the attempt's start, not from the submission: waiting
        for a worker (busy with other calibrations, or a batch job still queued) is not
        running, and is bounded by ``worker_wait`` instead.
        """
        now = time.monotonic()
        if stream.task_done is not None:
            stream.end_overdue = True  # its task ended, and its last record did not come after it
            return
        if stream.attempt is not None:
            overdue = stream.deadline(settings.timeout)
            if overdue is not None and now > overdue:
                self._fail(name, log_path, f"gave no sign of ending {settings.timeout:g} s (its time limit) + "
                           f"{_TIMEOUT_GRACE:g} s after it started on {_where(stream.where)}; the worker may be hung")
            return
        if now >= stream.next_waiting_note and stream.progress is not None:
            stream.progress.waiting(now - stream.waiting_since, clusters.state(client, settings))
            stream.next_waiting_note = now + _WAITING_EVERY
        if now - stream.waiting_since >= settings.worker_wait:
            if not client.scheduler_info(n_workers=-1).get("workers"):
                self._fail(name, log_path, f"found no worker to run it within {settings.worker_wait:g} s "
                           f"(worker_wait) on {clusters.describe(settings)}")
            stream.waiting_since = now  # workers exist, busy with other strategies: wait another round

    @staticmethod
    def _lost_message(stream: StrategyStream, settings: RunnerSettings) -> str:
        if len(stream.lost) > settings.retries:
            limit = f"more than retries={settings.retries} allows"
        else:  # the scheduler's own limit came first (it changed after the settings check)
            limit = (f"and its Dask scheduler gave up on it there (distributed.scheduler.allowed-failures is below "
                     f"retries={settings.retries})")
        return (f"lost its worker {len(stream.lost)} time(s) ({'; '.join(stream.lost)}), {limit}. This is a failure "
                f"of the cluster, not of the algorithm: {clusters.describe(settings)}")

    def _judge(self, name: str, log_path: Any, stream: StrategyStream, settings: RunnerSettings) -> str:
        """Turns how the child ended into CAF's outcome, as the reference runner does."""
        end = stream.end
        if stream.unreadable:
            return self._fail(name, log_path, f"could not be followed: its Dask scheduler stopped answering "
                              f"(reading the run's queue failed: {stream.unreadable}). This is a failure of the "
                              f"cluster, not of the algorithm: {clusters.describe(settings)}")
        if end is None and stream.task_done.lost_worker is not None:
            return self._fail(name, log_path, self._lost_message(stream, settings))
        if end is None:
            done = stream.task_done
            return self._fail(name, log_path, f"ended without a report from its worker ({_where(stream.where)}): "
                              f"the Dask task ended {done.status} ({done.error}). This is a failure "
                              "of the cluster, not of the algorithm")
        if end.unstartable:
            return self._fail(name, log_path, f"could not start: {end.unstartable}")
        if end.error:
            return self._fail(name, log_path, f"could not be supervised on {_where(stream.where)}:\n{end.error}")
        if end.leftovers:
            log_warning(f"{self.name}: the strategy of {name} left {len(end.leftovers)} process(es) running on "
                        f"{_where(stream.where)}, ended after it: {'; '.join(end.leftovers)}")
        if end.timed_out:
            return self._fail(name, log_path, f"exceeded its time limit of {settings.timeout:g} s and was killed")
        if end.cancelled:
            return self._fail(name, log_path, "was cancelled")
        if stream.violation:
            return self._fail(name, log_path, f"broke CAF's strategy protocol: {stream.violation}")
        code = end.returncode
        if stream.exception:
            return self._fail(name, log_path, f"raised {stream.exception}")
        if code is not None and code < 0:
            return self._fail(name, log_path, f"was killed by {_signal_name(-code)} (exit code {code})")
        if code:
            return self._fail(name, log_path, f"exited with code {code}"
                              + (f" after its final state {stream.final_state}" if stream.final_state else ""))
        if stream.final_state is None:
            return self._fail(name, log_path, "exited without sending a final state")
        return stream.final_state

    def _fail(self, name: str, log_path: Any, what: str) -> str:
        """Marks the run FAILED and raises RunnerError naming the algorithm, the cause and its log."""
        self.final_state = self.FAILED
        raise RunnerError(f"The strategy of algorithm {name} (calibration {self.name}) {what}.\n"
                          f"  {log_excerpt(log_path)}")
