"""Telling a waiting runner at once that the worker running its strategy was removed.

The scheduler announces every removed worker, with the tasks it was processing, as a
``remove-worker`` event on its ``all`` topic. One subscription per client forwards
those that concern a running strategy into that strategy's queue, where the runner is
waiting anyway: it reacts within milliseconds, and does so even when no worker is left
to run the strategy again (then nothing else would ever arrive on the queue).
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from . import messages

_watchers: "weakref.WeakKeyDictionary[Any, LossWatch]" = weakref.WeakKeyDictionary()
_watchers_lock = threading.Lock()


class LossWatch:
    """Per client: task key -> queue of the strategy it runs."""

    def __init__(self, client: Any) -> None:
        self._queues: dict = {}
        self._listeners: list = []
        self._lock = threading.Lock()
        client.subscribe_topic("all", self._on_event)

    def add_listener(self, listener: Any) -> None:
        """Calls ``listener(message)`` in a thread of its own for every worker added or removed."""
        with self._lock:
            self._listeners.append(listener)

    def watch(self, key: str, queue: Any) -> None:
        with self._lock:
            self._queues[key] = queue

    def forget(self, key: str) -> None:
        with self._lock:
            self._queues.pop(key, None)

    def _on_event(self, event: tuple) -> None:
        _, message = event
        action = message.get("action") if isinstance(message, dict) else None
        if action in ("add-worker", "remove-worker"):
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                threading.Thread(target=listener, args=(message,), daemon=True, name="caf-hpc-workers").start()
        if action != "remove-worker":
            return
        with self._lock:
            hit = [self._queues[key] for key in message.get("processing-tasks", ()) if key in self._queues]
        for queue in hit:
            record = {"kind": messages.LOST, "worker": message.get("worker")}
            # this runs on the client's event loop, where a blocking put would deadlock
            threading.Thread(target=_put, args=(queue, record), daemon=True, name="caf-hpc-lost").start()


def _put(queue: Any, record: dict) -> None:
    try:
        queue.put(record, timeout=10)
    except Exception:
        pass  # the strategy ended and its queue is gone: nothing waits for this any more


def watch_for(client: Any) -> LossWatch:
    """The client's watcher, subscribing it on first use."""
    with _watchers_lock:
        watcher = _watchers.get(client)
        if watcher is None:
            watcher = _watchers[client] = LossWatch(client)
        return watcher
