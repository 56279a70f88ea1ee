"""``DaskAlgorithmsRunner``: CAF's algorithm step on a Dask cluster.

CAF builds the runner with ``cls(name=...)``, sets its attributes and calls
``run(iov, iteration)``. Each algorithm's strategy is submitted as one Dask task, in
list order; the next one only after the previous one sent its final state and its
task ended, because it reads the payloads the previous one committed. Results stream
back through a ``distributed.Queue`` of their own and are appended to ``results`` as
they arrive. The first ``FAILED`` final state ends the run; a strategy that raises,
crashes or ends without a final state raises ``RunnerError``.
"""
from __future__ import annotations

import asyncio
import signal
import time
import uuid
from functools import partial
from typing import Any, ClassVar, Optional

from distributed import Queue

from . import clusters, messages, shipping, worker_loss, worker_task
from .basf2_compat import AlgorithmsRunner, RunnerError, log_debug, log_error, log_info, log_warning
from .job import StrategyTask
from .logs import describe
from .settings import RunnerSettings, resolve

#: How long one wait on the queue lasts before the runner checks its own deadline again.
_QUEUE_WAIT = 30.0
#: How long past the strategy's time limit the runner waits for the worker to report it.
_TIMEOUT_GRACE = 60.0
#: How long a task may take to end after its last record (it only returns then).
_TASK_END_WAIT = 60.0


def _announce_task_done(queue: Queue, future: Any) -> None:
    """Future callback: wakes the runner when the task ended without its own end record.

    A task that finished put its end record before it returned, so this one comes after
    it and is never read; it is sent anyway, so that nothing can leave the runner waiting.
    """
    record = {"kind": messages.TASK_DONE, "status": future.status, "error": None}
    if future.status == "error":
        try:
            record["error"] = repr(future.exception(timeout=5))
        except Exception as err:  # the reason is only for the message
            record["error"] = repr(err)
    try:
        queue.put(record, timeout=10)
    except Exception:
        pass  # the runner is done with this queue already


class _Stream:
    """Collects one strategy's records; keeps only the current attempt's.

    Dask runs a task again elsewhere when its worker is lost, so records carry the id
    of their attempt. An attempt is lost when the scheduler removes its worker (a
    ``lost`` record) or when another attempt shows up; its results are dropped, so that
    after the run ``results`` hold exactly the attempt that finished.
    """

    def __init__(self, algorithm_name: str, results: list) -> None:
        self.algorithm_name = algorithm_name
        self.results = results
        self.attempt: Optional[str] = None
        self.where: dict = {}
        self.attempt_started: Optional[float] = None
        self.waiting_since = time.monotonic()  # for a worker, while no attempt runs
        self.lost: list[dict] = []
        self.given_up: set = set()
        self.final_state: Optional[str] = None
        self.exception: Optional[str] = None
        self.end: Optional[dict] = None
        self.task_done: Optional[dict] = None

    @property
    def finished(self) -> bool:
        return self.end is not None or self.task_done is not None

    def consume(self, record: dict) -> None:
        kind, attempt = record.get("kind"), record.get("attempt")
        if kind == messages.TASK_DONE:
            self.task_done = record
            return
        if kind == messages.LOST:
            self._lose_worker(record["worker"])
            return
        if attempt in self.given_up:
            return  # a late record of an attempt given up
        if attempt != self.attempt:  # a new attempt (its start, or the end of one that could not start)
            if self.attempt is not None:
                self._lose_current()  # the scheduler ran the task again elsewhere
            self.attempt, self.attempt_started = attempt, time.monotonic()
            self.where = {k: record[k] for k in worker_task.IDENTITY if record.get(k) is not None}
        if kind == messages.FRAMES:
            for frame in record["frames"]:
                self._message(*messages.loads(frame))
        elif kind == messages.END:
            self.end = record

    def _message(self, kind: str, value: Any) -> None:
        if kind == messages.EXCEPTION:
            self.exception = value
            return
        messages.check_message(value, self.final_state is not None)
        if value["type"] == messages.RESULT:
            self.results.append(value["value"])
        else:
            self.final_state = value["value"]

    def _lose_worker(self, worker: str) -> None:
        if self.attempt is None:
            self.lost.append({"worker": worker, "results": 0})  # lost before it could announce itself
        elif self.where.get("worker") == worker:
            self._lose_current()
        # else: the removed worker ran an attempt given up already

    def _lose_current(self) -> None:
        self.lost.append(dict(self.where, results=len(self.results)))
        log_warning(f"lost the worker running {self.algorithm_name} ({_where(self.where)}); "
                    f"dropping {len(self.results)} result(s) of the lost attempt")
        self.given_up.add(self.attempt)
        self.results.clear()
        self.final_state = self.exception = None
        self.attempt, self.where, self.attempt_started = None, {}, None
        self.waiting_since = time.monotonic()


def _where(identity: dict) -> str:
    parts = [f"host {identity['host']}"] if identity.get("host") else []
    if identity.get("worker"):
        parts.append(f"worker {identity['worker']}")
    if identity.get("job_id"):
        parts.append(f"batch job {identity['job_id']}")
    return ", ".join(parts) or "no worker yet"


def _lost_message(stream: _Stream, settings: RunnerSettings) -> str:
    lost = "; ".join(_where(where) for where in stream.lost)
    return (f"lost its worker {len(stream.lost)} time(s) ({lost}), more than retries={settings.retries} allows. "
            f"This is a failure of the cluster, not of the algorithm: {clusters.describe(settings)}")


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

    @classmethod
    def settings(cls) -> RunnerSettings:
        return resolve(**cls.overrides)

    def run(self, iov: Any, iteration: int) -> None:
        settings = self.settings()
        if settings.site:
            from . import sites
            settings = sites.apply_runner_section(settings)
        self.final_state = None
        algorithms = list(self.algorithms or [])
        params = shipping.strategy_params(self)
        shipping.register_local_modules(settings.ship_modules)
        # every algorithm is packed (or refused) and the cluster reached before anything is submitted
        try:
            packed = [(alg, shipping.pack(alg, params, iov, iteration, settings.factories.get(alg.name),
                                          settings.preload))
                      for alg in algorithms]
            client = clusters.client_for(settings)
            if settings.fork_server:
                worker_task.start_preloading(client, settings.preload)
        except Exception:
            self.final_state = self.FAILED
            raise
        for algorithm, payload in packed:
            state = self._run_strategy(client, settings, algorithm.name, payload)
            if state == self.FAILED:
                self.final_state = self.FAILED
                log_error(f"{self.name}: algorithm {algorithm.name} FAILED; later algorithms are not run.\n"
                          f"  {describe(shipping.log_file(self.output_dir, algorithm.name))}")
                return
        self.final_state = self.COMPLETED

    def _run_strategy(self, client: Any, settings: RunnerSettings, name: str, payload: bytes) -> str:
        """Submits one strategy, streams its results into ``self.results[name]``; returns its final state."""
        results = self.results.setdefault(name, [])
        results.clear()
        log_path = shipping.log_file(self.output_dir, name)
        token = uuid.uuid4().hex[:16]
        queue = Queue(f"caf-hpc-{token}", client=client)
        task = StrategyTask(name, payload, queue.name, str(log_path), str(self.output_dir), settings.timeout,
                            settings.fork_server, settings.preload)
        started = time.monotonic()
        stream = _Stream(name, results)
        key = f"caf-strategy-{name}-{token}"
        watch = worker_loss.watch_for(client)
        watch.watch(key, queue)
        future = client.submit(worker_task.run_strategy_task, task, key=key, pure=False)
        future.add_done_callback(partial(_announce_task_done, queue))
        log_debug(f"{self.name}: submitted {name} as task {key}")
        try:
            while not stream.finished:
                try:
                    record = queue.get(timeout=self._quiet_limit(stream, settings))
                except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
                    self._check_quiet(client, settings, name, log_path, stream)
                    continue
                stream.consume(record)
                if len(stream.lost) > settings.retries:
                    return self._fail(name, log_path, _lost_message(stream, settings))
            if stream.end is not None:
                future.result(timeout=_TASK_END_WAIT)
        except messages.ProtocolError as err:
            return self._fail(name, log_path, f"broke CAF's strategy protocol: {err}")
        finally:
            watch.forget(key)
            if not future.done():
                future.cancel()
            queue.close()  # the only holder: the queue goes with it
        log_info(f"{self.name}: {name} ended {stream.final_state} with {len(results)} result(s) "
                 f"in {time.monotonic() - started:.2f} s on {_where(stream.where)}")
        return self._judge(name, log_path, stream, settings)

    @staticmethod
    def _quiet_limit(stream: _Stream, settings: RunnerSettings) -> float:
        """How long to wait for the next record before checking on the strategy."""
        now = time.monotonic()
        if stream.attempt is None:
            until = stream.waiting_since + settings.worker_wait
        elif settings.timeout:
            until = stream.attempt_started + settings.timeout + _TIMEOUT_GRACE
        else:
            return _QUEUE_WAIT
        return max(0.1, min(_QUEUE_WAIT, until - now))

    def _check_quiet(self, client: Any, settings: RunnerSettings, name: str, log_path: Any, stream: _Stream) -> None:
        """After a quiet spell: fails when a running attempt is past its time limit, or no worker came in time.

        The time limit counts from the attempt's start, not from the submission: waiting
        for a worker (busy with other calibrations, or a batch job still queued) is not
        running, and is bounded by ``worker_wait`` instead.
        """
        now = time.monotonic()
        if stream.attempt is not None:
            if settings.timeout and now > stream.attempt_started + settings.timeout + _TIMEOUT_GRACE:
                self._fail(name, log_path, f"gave no sign of ending {settings.timeout:g} s (its time limit) + "
                           f"{_TIMEOUT_GRACE:g} s after it started on {_where(stream.where)}; the worker may be hung")
            return
        if now - stream.waiting_since >= settings.worker_wait:
            if not client.scheduler_info(n_workers=-1).get("workers"):
                self._fail(name, log_path, f"found no worker to run it within {settings.worker_wait:g} s "
                           f"(worker_wait) on {clusters.describe(settings)}")
            stream.waiting_since = now  # workers exist, busy with other strategies: wait another round

    def _judge(self, name: str, log_path: Any, stream: _Stream, settings: RunnerSettings) -> str:
        """Turns how the child ended into CAF's outcome, as the reference runner does."""
        end = stream.end
        if end is None:
            done = stream.task_done or {}
            return self._fail(name, log_path, f"ended without a report from its worker ({_where(stream.where)}): "
                              f"the Dask task ended {done.get('status')} ({done.get('error')}). This is a failure "
                              "of the cluster, not of the algorithm")
        if end["error"]:
            return self._fail(name, log_path, f"could not be supervised on {_where(stream.where)}:\n{end['error']}")
        if end["timed_out"]:
            return self._fail(name, log_path, f"exceeded its time limit of {settings.timeout:g} s and was killed")
        if end["cancelled"]:
            return self._fail(name, log_path, "was cancelled")
        code = end["returncode"]
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
                          f"  {describe(log_path)}")
