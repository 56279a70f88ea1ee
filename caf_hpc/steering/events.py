"""What the runner waits on: records from its workers and events of its own process, in one queue.

One ``Inbox`` per ``run()``. The run's ``distributed.Queue``, the only thing that
crosses from the workers, is read by a coroutine on the client's event loop, which puts
each record into a local queue. The runner's own events, a task's future ending and a
worker being removed, happen in this process and are put into that local queue where
they happen, with no round trip through the scheduler. The runner makes one wait.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from distributed import KilledWorker, Queue

from .. import dask_adapter, protocol
from ..basf2_compat import log_warning

#: Put by the runner itself: tells the reader to stop, after every record put before it.
_CLOSE = b"caf-hpc-close"
_CLOSE_WAIT = 15.0
#: How long the queue of a run stopped by Ctrl-C stays, for the last records of its cancelled strategy:
#: the task sees the cancellation within a second, and gives the strategy's process at most twice 5 s to end.
LINGER = 15.0


@dataclass(frozen=True)
class TaskDone:
    """A strategy's Dask task ended (``status``: finished, error, cancelled, lost).

    ``lost_worker`` is the worker named by a ``KilledWorker``: the scheduler gave up on the
    task when that worker was lost, which is one more lost worker for the runner to count.
    """

    key: str
    status: str
    error: Optional[str] = None
    lost_worker: Optional[str] = None


@dataclass(frozen=True)
class WorkerLost:
    """The scheduler removed the worker that was running the task ``key``."""

    key: str
    worker: str


@dataclass(frozen=True)
class Interrupted:
    """The steering script was interrupted (Ctrl-C) while this run went on in a thread of its own."""


@dataclass(frozen=True)
class Unreadable:
    """The run's queue could not be read any more (the scheduler went away)."""

    error: str


Event = Union[protocol.Started, protocol.Frames, protocol.Ended, TaskDone, WorkerLost, Unreadable, Interrupted]


class Inbox:
    """The run's queue and the runner's own events, read with one ``get``."""

    def __init__(self, client: Any) -> None:
        self._local: "queue.SimpleQueue[Event]" = queue.SimpleQueue()
        self._gone = False
        self._keys: set = set()
        self.queue = Queue(f"caf-hpc-{uuid.uuid4().hex[:16]}", client=client)
        self.name = self.queue.name
        self._reader = asyncio.run_coroutine_threadsafe(self._read(), client.loop.asyncio_loop)
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

    def get(self, timeout: float) -> Optional[Event]:
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


_watches: "weakref.WeakKeyDictionary[Any, WorkerWatch]" = weakref.WeakKeyDictionary()
_watches_lock = threading.Lock()


class WorkerWatch:
    """Per client: the scheduler's worker events, to the inboxes of the tasks they concern and to listeners.

    A runner learns that the worker running its strategy was removed within
    milliseconds, even when no worker is left to run it again (then nothing else would
    ever arrive).
    """

    def __init__(self, client: Any) -> None:
        self._inboxes: set = set()
        self._listeners: list = []
        self._lock = threading.Lock()
        dask_adapter.on_worker_events(client, self._on_event)

    @classmethod
    def of(cls, client: Any) -> "WorkerWatch":
        """The client's watch, subscribing it on first use."""
        with _watches_lock:
            watch = _watches.get(client)
            if watch is None:
                watch = _watches[client] = cls(client)
            return watch

    def add(self, inbox: Inbox) -> None:
        with self._lock:
            self._inboxes.add(inbox)

    def remove(self, inbox: Inbox) -> None:
        with self._lock:
            self._inboxes.discard(inbox)

    def add_listener(self, listener: Callable[[dict], None]) -> None:
        """Calls ``listener(message)`` in a thread of its own for every worker added or removed."""
        with self._lock:
            self._listeners.append(listener)

    def _on_event(self, action: str, message: dict) -> None:  # on the client's event loop: never block
        with self._lock:
            listeners, inboxes = list(self._listeners), list(self._inboxes)
        for listener in listeners:
            threading.Thread(target=_call, args=(listener, message), daemon=True, name="caf-hpc-workers").start()
        if action != "remove-worker":
            return
        for key in message.get("processing-tasks", ()):
            for inbox in inboxes:
                if inbox.watches(key):
                    inbox.put(WorkerLost(key, message.get("worker")))


def _call(listener: Callable[[dict], None], message: dict) -> None:
    try:
        listener(message)
    except Exception as err:  # a listener's failure must not go unseen, nor stop the others
        log_warning(f"handling a worker event failed: {err!r}")
