"""The scheduler's worker events, per client: to the inboxes of the tasks they concern and to listeners.

Both the strategy runner and the collector backend wait on an inbox that must hear, within
milliseconds, that the worker running its task was removed, even when no worker is left
to run it again (then nothing else would ever arrive); the keeper of batch jobs
(``job_replacement``) listens to the same events. One subscription per client serves all.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import dask_adapter
from ..basf2_compat import log_warning


@dataclass(frozen=True)
class WorkerLost:
    """The scheduler removed the worker that was running the task ``key``."""

    key: str
    worker: str


class Watcher(Protocol):
    """What a watch delivers ``WorkerLost`` to: an inbox that says which task keys it follows."""

    def watches(self, key: str) -> bool: ...

    def put(self, event: Any) -> None: ...


_watches: weakref.WeakKeyDictionary[Any, WorkerWatch] = weakref.WeakKeyDictionary()
_watches_lock = threading.Lock()


class WorkerWatch:
    """Per client: the scheduler's worker events, to the inboxes of the tasks they concern and to listeners."""

    def __init__(self, client: Any) -> None:
        self._inboxes: set = set()
        self._listeners: list = []
        self._lock = threading.Lock()
        dask_adapter.on_worker_events(client, self._on_event)

    @classmethod
    def of(cls, client: Any) -> WorkerWatch:
        """The client's watch, subscribing it on first use."""
        with _watches_lock:
            watch = _watches.get(client)
            if watch is None:
                watch = _watches[client] = cls(client)
            return watch

    def add(self, inbox: Watcher) -> None:
        with self._lock:
            self._inboxes.add(inbox)

    def remove(self, inbox: Watcher) -> None:
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
                    # the ``all`` topic's remove-worker names the worker (dask_adapter.on_worker_events)
                    inbox.put(WorkerLost(key, str(message.get("worker", "(not named by the scheduler)"))))


def _call(listener: Callable[[dict], None], message: dict) -> None:
    try:
        listener(message)
    except Exception as err:  # a listener's failure must not go unseen, nor stop the others
        log_warning(f"handling a worker event failed: {err!r}")
