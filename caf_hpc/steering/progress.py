"""What a run shows while it goes: a line per step of each strategy, and the run record on disk.

The lines go to the runner's log at INFO, so that they show by default. Inside basf2
that is ``B2INFO``; elsewhere it is the ``caf_hpc`` logger. A calibration that waits for
batch jobs hours long then says so, instead of looking hung.

The record, ``caf-hpc-run.json`` in the iteration's output directory
(``docs/run-record.md``), says what ran where, when and how it ended, attempt by attempt.
It is rewritten atomically (a new file renamed over the old one) as the run goes, at most
every ``WRITE_EVERY`` s and at once at its end, so a steering script killed at any moment
leaves a complete, readable record of what had happened until a moment before.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import protocol
from ..basf2_compat import log_info

RECORD_FILE = "caf-hpc-run.json"
RECORD_FORMAT = "caf-hpc-run-record"
RECORD_VERSION = 1
#: How often a strategy that keeps sending results says how many it sent, and the record is rewritten.
RESULTS_EVERY = 5.0
#: The record is rewritten at most this often while the run goes (and at once at its end).
WRITE_EVERY = 0.2


_listeners: list = []


def add_listener(listener: Callable[[dict], None]) -> Callable[[], None]:
    """Calls ``listener(record)`` after every change of any run's record in this process (the record as
    in docs/run-record.md; read it, do not change it); returns the function that stops that.

    For live displays: ``caf-hpc demo`` draws its table from it. A listener that raises is dropped.
    """
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def _result_codes(results: list) -> dict:
    """How many results carried each result code (CAF's ``IoV_Result.result``), codes as strings (JSON keys)."""
    return {str(code): count for code, count in sorted(Counter(getattr(r, "result", None) for r in results).items(),
                                                        key=lambda item: str(item[0]))}


def _codes_text(codes: dict) -> str:
    return ", ".join(f"{count}× code {code}" for code, count in codes.items()) or "no results"


def _where_fields(where: protocol.Where | None) -> dict:
    if where is None:
        return {"host": None, "pid": None, "worker": None, "job_id": None}
    return {"host": where.host, "pid": where.pid, "worker": where.worker, "job_id": where.job_id}


class RunProgress:
    """One ``run()``: its record, and the strategies' progress lines."""

    def __init__(self, calibration: str, iteration: int, output_dir: Any, target: str, iov: Any = None,
                 dashboard: str | None = None, kind: str = "algorithms") -> None:
        self.calibration = calibration
        self.path = Path(output_dir) / RECORD_FILE
        #: A collector step's record (``kind`` "collector") says a line per collector job, not per subjob.
        self.quiet = kind != "algorithms"
        self.data: dict = {
            "format": RECORD_FORMAT, "version": RECORD_VERSION, "kind": kind, "calibration": calibration,
            "iteration": iteration, "iov": None if iov is None else str(iov), "target": target,
            "dashboard": dashboard,
            "started": time.time(), "finished": None, "final_state": None, "strategies": [],
        }
        self._lock = threading.RLock()
        self._pending: threading.Timer | None = None
        self._written = 0.0
        self.write(now=True)

    def strategy(self, name: str, key: str, log_path: Any) -> StrategyProgress:
        """A strategy was submitted."""
        entry = {"algorithm": name, "task": key, "log": str(log_path), "submitted": time.time(), "finished": None,
                 "final_state": None, "results": 0, "result_codes": {}, "error": None, "attempts": []}
        with self._lock:  # the deferred rewrite reads the record in a thread of its own
            self.data["strategies"].append(entry)
            self.write()
        if not self.quiet:
            log_info(f"{self.calibration}: {name} submitted")
        return StrategyProgress(self, entry)

    def finish(self, final_state: str | None) -> None:
        with self._lock:
            self.data["finished"], self.data["final_state"] = time.time(), final_state
            self.write(now=True)

    def write(self, now: bool = False) -> None:
        """Tells the listeners, and rewrites the record: at once if it was not rewritten in the last
        ``WRITE_EVERY`` s, else once that time is up, from a timer thread (a strategy's steps come
        milliseconds apart, and writing at each cost every trivial strategy 10 ms). Changes to
        ``data`` are made under ``_lock``, which the timer's rewrite holds while it reads them."""
        for listener in list(_listeners):
            try:
                listener(self.data)
            except Exception as err:  # a display's failure must not stop the calibration
                _listeners.remove(listener)
                log_info(f"{self.calibration}: a progress listener failed and was dropped: {err!r}")
        with self._lock:
            wait = self._written + WRITE_EVERY - time.monotonic()
            if now or wait <= 0:
                self._write_file()
                return
            if self._pending is not None:
                return  # a rewrite is due already; it writes what is there then
            self._pending = threading.Timer(wait, self._deferred)
            self._pending.daemon = True
            self._pending.start()

    def _deferred(self) -> None:
        with self._lock:
            self._pending = None
            self._write_file()

    def _write_file(self) -> None:
        """Replaces the record in one step: a reader sees the old one or the new one, never half of one."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._written = time.monotonic()
        try:
            text = json.dumps(self.data, indent=1)
            handle, temporary = tempfile.mkstemp(prefix=f".{RECORD_FILE}.", dir=self.path.parent)
            with os.fdopen(handle, "w") as out:
                out.write(text)
            os.replace(temporary, self.path)
        except OSError as err:  # a full or read-only disk must not stop the calibration
            log_info(f"{self.calibration}: could not write the run record {self.path}: {err}")


class StrategyProgress:
    """One strategy: its attempts, as the runner learns of them."""

    def __init__(self, run: RunProgress, entry: dict) -> None:
        self.run = run
        self.entry = entry
        self.attempt: dict | None = None
        self.where: protocol.Where | None = None  # of the running attempt, for the lines
        self._results_said = time.monotonic()

    @property
    def name(self) -> str:
        return self.entry["algorithm"]

    def waiting(self, seconds: float, cluster: str) -> None:
        """No attempt runs yet: the cluster's workers are busy, or its batch jobs still wait."""
        log_info(f"{self.run.calibration}: {self.name} waiting {seconds:.0f} s for a worker; {cluster}")

    def started(self, attempt: str, where: protocol.Where) -> None:
        with self.run._lock:  # changes to the record are made under its lock: see RunProgress.write
            self.attempt = {"attempt": attempt, **_where_fields(where), "started": time.time(), "finished": None,
                            "outcome": "running", "returncode": None, "signal": None, "timed_out": False,
                            "final_state": None, "results": 0, "result_codes": {}, "error": None}
            self.entry["attempts"].append(self.attempt)
            self.where = where
            self.run.write()
        if not self.run.quiet:
            log_info(f"{self.run.calibration}: {self.name} started on {where.label()}; log {self.entry['log']}")

    def results(self, results: list) -> None:
        """Results arrived; every ``RESULTS_EVERY`` s a strategy that sends many says how many so far."""
        if self.attempt is None or time.monotonic() - self._results_said < RESULTS_EVERY:
            return
        self._results_said = time.monotonic()
        with self.run._lock:
            self.attempt["results"], self.attempt["result_codes"] = len(results), _result_codes(results)
            self.run.write()
        log_info(f"{self.run.calibration}: {self.name}: {len(results)} result(s) so far")

    def lost(self, results_dropped: int, walltime: str | None = None) -> None:
        """The worker running the attempt was lost (``walltime``: to its job's walltime, and why so); the
        attempt's results were dropped."""
        if self.attempt is not None:
            with self.run._lock:
                self.attempt.update(outcome="lost", finished=time.time(), results=results_dropped)
                if walltime:
                    self.attempt["lost_to"] = "walltime"
                self.attempt, self.where = None, None
                self.run.write()

    def cut(self, why: str) -> None:
        """The strategy's task ended with an attempt its batch job's walltime cut; the runner submits it again
        (a new entry)."""
        with self.run._lock:
            if self.attempt is not None:
                self.attempt.update(outcome="lost", finished=time.time(), lost_to="walltime")
                self.attempt, self.where = None, None
            self.entry.update(finished=time.time(), error=why)
            self.run.write()

    def lost_unseen(self, worker: str, walltime: str | None = None) -> None:
        """A worker was lost while running an attempt of which nothing had arrived yet (``walltime``: to its job's
        walltime)."""
        with self.run._lock:
            self.entry["attempts"].append({
                "attempt": None, **_where_fields(None), "worker": worker, "started": None, "finished": time.time(),
                "outcome": "lost", "returncode": None, "signal": None, "timed_out": False, "final_state": None,
                "results": 0, "result_codes": {}, "error": None, **({"lost_to": "walltime"} if walltime else {})})
            self.run.write()

    def ended(self, final_state: str, results: list, end: protocol.TaskEnd | None,
              error: str | None) -> None:
        """The strategy is over: ``final_state`` as the runner judged it, ``error`` if it raised RunnerError."""
        now = time.time()
        codes = _result_codes(results)
        with self.run._lock:
            self._end(now, final_state, results, codes, end, error)
        if self.run.quiet:
            return
        took = now - self.entry["submitted"]
        where = f" on {self.where.label()}" if self.where is not None and self.where.host else ""
        log_info(f"{self.run.calibration}: {self.name} ended {final_state}: {len(results)} result(s) "
                 f"({_codes_text(codes)}) in {took:.2f} s{where}")

    def _end(self, now: float, final_state: str, results: list, codes: dict,
             end: protocol.TaskEnd | None, error: str | None) -> None:
        self.entry.update(finished=now, final_state=final_state, results=len(results), result_codes=codes,
                          error=error)
        if self.attempt is not None:
            code = end.returncode if end is not None else None
            if end is not None and end.started_at is not None:  # the worker's own times, not when records arrived
                self.attempt["started"] = end.started_at
            finished = end.ended_at if end is not None and end.ended_at else now
            self.attempt.update(
                outcome="ended", finished=finished, final_state=final_state, results=len(results), result_codes=codes,
                returncode=code if code is None or code >= 0 else None,
                signal=-code if code is not None and code < 0 else None,
                timed_out=bool(getattr(end, "timed_out", False)), error=error)
        self.run.write()
