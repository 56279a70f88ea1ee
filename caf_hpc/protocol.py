"""What crosses a process boundary, defined once.

Three processes take part in one strategy, and four things travel between them::

    steering process --StrategyTask-------------------> Dask worker       the Dask task's argument
    Dask worker      --StrategyCall, pickled----------> strategy child    a frame on the child's stdin
    strategy child   --frames: lists of ChildMessage--> Dask worker       a pipe; the worker does not look inside
    Dask worker      --Record (Started/Frames)--------> steering process  the run's ``distributed.Queue``, as they come
    Dask worker      --Ended--------------------------> steering process  the Dask task's return value: the end

The end is the task's return value and nothing else: it says how many records the
attempt put into the queue, and every put is acknowledged by the scheduler before the
next one (and before the task returns), so when the runner has the end, the records it
counts are all in the scheduler's queue and the runner reads on until it has them all.
The child's last frames ride with the end: after its final state (or what it raised, or
a violation) the child writes an ``ENDING`` frame and soon closes its pipe, and what the
worker read from the ``ENDING`` frame on (it holds it) until the pipe closed is in
``Ended.frames``, read after the records. A short strategy puts no record at all.

A user's module that the workers cannot import (beside the steering script) rides along
as ``ModuleSource``: a factory's inside the ``StrategyCall`` (its ``Factory``), a preload
list's inside the ``StrategyTask`` (its ``Preload``, which the worker hands to its fork
server, or as a frame before the job to a fresh child).

CAF's message rules are checked here, once, where the strategy calls ``queue.put``: in
its child. A message that breaks them travels as a ``Violation`` and the runner fails
the strategy for it. A frame is a length-prefixed pickle, so an ``IoV_Result`` arrives
as an ``IoV_Result``; a frame holds a list of messages, so a class that travels by value
(defined beside the steering script) is pickled once per frame, not once per result.

Nothing here imports Dask: the strategy's child imports this module and starts in
milliseconds.
"""
from __future__ import annotations

import os
import pickle
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------- CAF's message rules
RESULT = "result"
FINAL_STATE = "final_state"
FINAL_STATES = ("COMPLETED", "FAILED")


class ProtocolError(ValueError):
    """A strategy sent something CAF's protocol does not allow."""


def check_message(message: Any, final_state_sent: bool) -> None:
    """Raises ProtocolError unless ``message`` is a CAF strategy message allowed now."""
    if not isinstance(message, dict) or "type" not in message or "value" not in message:
        raise ProtocolError(f"a strategy message must be a dict with 'type' and 'value', got {message!r}")
    if final_state_sent:
        raise ProtocolError(f"message {message['type']!r} sent after the final state; the final state must come last")
    kind, value = message["type"], message["value"]
    if kind == RESULT:
        if not (hasattr(value, "iov") and hasattr(value, "result")):
            raise ProtocolError(f"a 'result' message carries an IoV_Result(iov, result), got {value!r}")
    elif kind == FINAL_STATE:
        if value not in FINAL_STATES:
            raise ProtocolError(f"final state must be one of {', '.join(FINAL_STATES)}, got {value!r}")
    else:
        raise ProtocolError(f"unknown message type {kind!r}: allowed are {RESULT!r} and {FINAL_STATE!r}")


# --------------------------------------------------------------------------- user modules, steering process -> worker
@dataclass(frozen=True)
class ModuleSource:
    """A module the workers cannot import by themselves (beside the steering script), sent as its
    source and imported there under its own name (``caf_hpc.child.modules``)."""

    name: str
    path: str              # its file in the steering process (a package's __init__.py); a namespace package's dir
    source: str | None     # None for a namespace package
    is_package: bool = False


@dataclass(frozen=True)
class Factory:
    """A factory named ``module:function``: called on the worker with its module imported there,
    top-level code included. ``modules`` carries the module (and its local neighbours) when the
    workers cannot import it themselves; empty for an installed module."""

    spec: str
    modules: tuple = ()


@dataclass(frozen=True)
class Preload:
    """What a worker imports (``module``) or imports and calls (``module:function``) once, before
    its strategies, and the local modules the entries need, as for ``Factory``."""

    entries: tuple = ()
    modules: tuple = ()

    @classmethod
    def of(cls, preload: Preload | Iterable[str]) -> Preload:
        """A ``Preload`` from itself or from a list of entries alone (installed modules)."""
        return preload if isinstance(preload, Preload) else cls(tuple(preload))


# --------------------------------------------------------------------------- steering process -> Dask worker
@dataclass(frozen=True, kw_only=True)
class StrategyTask:
    """What the Dask worker needs to run one strategy in a child and report on it (built by keyword only:
    ten fields, several of one type, are too many to get right by position)."""

    key: str                # the Dask task's key; every record names it
    algorithm_name: str
    payload: bytes          # a pickled StrategyCall, opened only by the child
    queue_name: str         # the run's distributed.Queue
    log_path: str
    output_dir: str
    timeout: float | None = None  # the strategy's time limit, kept by the worker (see caf_hpc.worker.task)
    fork_server: bool = True
    preload: Preload = Preload()  # run once per worker process before the strategy's process starts
    input_files: tuple = () # checked for on the worker before the strategy starts
    memory_limit: int | None = None  # bytes the strategy asked for; the worker ends it past them (worker.memory)
    imports: tuple = ()     # installed modules the payload is unpickled with (by reference): the fork server
                            # imports them once for the strategies after this one (worker.forkserver)


@dataclass(frozen=True)
class CollectorTask:
    """What the Dask worker needs to run one collector (sub)job as CAF's backends run it.

    Plain data: CAF's ``Job``/``SubJob`` objects do not survive pickling (a SubJob's
    attribute fall-through recurses when unpickled), and the worker needs none of them:
    ``submit.sh``, the sandbox and the input list are in ``working_dir`` already.
    """

    key: str                # the Dask task's key; every record names it
    name: str               # the (sub)job's name, as CAF logs it
    working_dir: str        # where submit.sh is, and where it runs
    output_dir: str         # where its output_patterns must match before it counts as completed
    output_patterns: tuple
    queue_name: str         # the backend's distributed.Queue, for the Started record
    environment: dict | None = None  # the script's environment; None: the worker's own
    script: str = "submit.sh"


# --------------------------------------------------------------------------- Dask worker -> strategy child
@dataclass
class StrategyCall:
    """Everything the child needs to make the call ``algorithm.strategy(algorithm)`` as CAF would."""

    algorithm: Any
    params: dict
    iov: Any
    iteration: int
    factory: Callable[[], Any] | Factory | None = None

    def rebuild_algorithm(self, load: Callable[[Factory], Callable[[], Any]]) -> Any:
        """Puts back the algorithm object that could not be shipped, from the user's factory: a
        function sent by value, or a ``Factory`` whose module ``load`` imports first (in the strategy's
        process: ``caf_hpc.child.modules.load``; this module imports nothing of the child's)."""
        if self.factory is not None:
            function = load(self.factory) if isinstance(self.factory, Factory) else self.factory
            built = function()
            # A factory may return the algorithm object itself or a whole framework.Algorithm.
            self.algorithm.algorithm = getattr(built, "algorithm", built) if hasattr(built, "strategy") else built
        return self.algorithm


# --------------------------------------------------------------------------- strategy child -> Dask worker
@dataclass(frozen=True)
class Result:
    """A ``{"type": "result", "value": IoV_Result}`` message, checked."""

    value: Any


@dataclass(frozen=True)
class FinalState:
    """The ``{"type": "final_state", ...}`` message, checked: ``COMPLETED`` or ``FAILED``."""

    state: str


@dataclass(frozen=True)
class Raised:
    """The strategy raised; ``text`` is ``Type: message`` (its traceback is in the log)."""

    text: str


@dataclass(frozen=True)
class Violation:
    """The strategy broke CAF's message rules: what ``check_message`` said."""

    text: str


ChildMessage = Result | FinalState | Raised | Violation

#: A frame of no bytes: the child's end comes next (it just wrote its final state, what it raised or a
#: violation). The worker holds the frames from here on until the pipe closes, for its ``Ended``
#: (``HOLD_FOR_END`` at most: a strategy that goes on after its final state has them published).
ENDING = b""
HOLD_FOR_END = 0.2


# --------------------------------------------------------------------------- Dask worker -> steering process
@dataclass(frozen=True)
class Where:
    """Where an attempt runs: for the runner's messages and for matching a removed worker."""

    host: str
    pid: int
    worker: str | None = None    # the Dask worker's address
    job_id: str | None = None    # the batch job it runs in

    @classmethod
    def here(cls, worker: str | None = None, job_id: str | None = None) -> Where:
        return cls(socket.gethostname(), os.getpid(), worker, job_id)

    def label(self) -> str:
        """"host h, worker w, batch job j": for messages."""
        parts = [f"host {self.host}"]
        if self.worker:
            parts.append(f"worker {self.worker}")
        if self.job_id:
            parts.append(f"batch job {self.job_id}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Started:
    """The attempt's process runs (sent only when it has sent nothing soon after its start)."""

    key: str
    attempt: str
    where: Where


@dataclass(frozen=True)
class Frames:
    """Frames the child wrote, as they came; the first record of an attempt also says that it started."""

    key: str
    attempt: str
    where: Where
    frames: tuple = ()


#: What an attempt puts into the run's queue while it runs. Its end is not among them: see ``TaskEnd``.
Record = Started | Frames


@dataclass(frozen=True)
class TaskEnd:
    """How an attempt of a Dask task of ours ended: the task's return value, and so its only end.

    A lost worker returns nothing: that is the other end, which the scheduler reports.
    """

    key: str
    attempt: str
    where: Where
    returncode: int | None = None
    cancelled: bool = False
    error: str | None = None        # the supervision itself failed: its traceback
    unstartable: str | None = None  # why no process was started (a path this worker cannot see)
    started_at: float | None = None  # the worker's clock (time.time()) when the process started
    ended_at: float | None = None    # ... and when the attempt ended


@dataclass(frozen=True)
class Ended(TaskEnd):
    """How a strategy's attempt ended, and how many records it put into the run's queue before.

    ``records`` lets the runner know that every result arrived: the queue's records come
    in the order they were put, each put acknowledged before the task returned. ``frames``
    are what the child wrote last, read just before its message pipe closed: they travel
    here instead of in one more record (a short strategy puts none), and come after the
    ``records``.
    """

    records: int = 0
    frames: tuple = ()
    timed_out: bool = False
    leftovers: tuple = ()           # the processes the strategy's process left running, ended after it
    out_of_memory: str | None = None  # ended by its worker for using more memory than it has: the figures


@dataclass(frozen=True)
class CollectorEnded(TaskEnd):
    """How a collector (sub)job's script ended."""

    outputs: tuple = ()               # files in output_dir matching the job's output_patterns


def to_wire(record: Record) -> bytes:
    """A record as a ``distributed.Queue`` carries it (msgpack takes bytes, not our classes)."""
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


def from_wire(data: bytes) -> Record:
    return pickle.loads(data)


# --------------------------------------------------------------------------- pickling and framing
def dumps(obj: Any) -> bytes:
    """Pickles with the standard library; cloudpickle only for what it cannot (classes made in a script)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


_HEADER = struct.Struct("!Q")


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exactly(fd: int, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            raise EOFError(f"pipe closed with {remaining} of {size} bytes unread")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes:
    (size,) = _HEADER.unpack(read_exactly(fd, _HEADER.size))
    return read_exactly(fd, size)


class FrameBuffer:
    """Splits a byte stream into complete frames, keeping a partial one for later."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a frame not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames, offset, end = [], 0, len(self._buffer)
        while end - offset >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer, offset)
            if end - offset - _HEADER.size < size:
                break
            start = offset + _HEADER.size
            frames.append(bytes(self._buffer[start:start + size]))
            offset = start + size
        del self._buffer[:offset]
        return frames
