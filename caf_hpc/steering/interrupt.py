"""Ctrl-C of a steering script whose calibrations run in threads of their own, as CAF's do.

CAF runs each calibration in a non-daemon thread and waits for them in the main thread.
Ctrl-C raises ``KeyboardInterrupt`` in the main thread only; the interpreter then waits
for the other threads, each blocked in a runner that waits for its strategy, which may
run for hours. So when the main thread has ended by ``KeyboardInterrupt``, every runner
still running is told to stop: it cancels its strategy (whose process is killed with
everything it started) and returns ``FAILED``; a runner started after that returns
``FAILED`` at once. A main thread that ends normally leaves the threads to finish, as
Python always does.

The hook is CPython's ``threading._register_atexit``: called after the main thread
ended and before the interpreter joins the other threads (``concurrent.futures`` stops
its workers through it). ``sys.last_type`` says how the main thread ended.
"""
from __future__ import annotations

import sys
import threading
import time
import weakref
from typing import Callable

_interrupted = threading.Event()
_listeners: "weakref.WeakSet" = weakref.WeakSet()
_lock = threading.Lock()


class Interrupted(Exception):
    """The steering script was interrupted (Ctrl-C) while this run went on in a thread of its own."""


def interrupted() -> bool:
    """True once the main thread ended by Ctrl-C."""
    return _interrupted.is_set()


#: How long the interpreter's exit waits for the runners it told to stop.
STOP_WAIT = 10.0


def notify(listener: object, on_interrupt: Callable[[], None], stopped: threading.Event) -> None:
    """Calls ``on_interrupt()`` when the main thread ends by Ctrl-C, while ``listener`` lives, and
    then waits (at most ``STOP_WAIT`` s) until ``stopped`` is set.

    The wait matters: right after this hook, the interpreter stops its thread pools,
    and Dask runs a cancelled future's callbacks in one; a runner that cancels its
    strategy after that would print tracebacks. ``listener`` holds the callback and
    the event, so that they go with it.
    """
    listener._on_interrupt = (on_interrupt, stopped)  # type: ignore[attr-defined]
    with _lock:
        _listeners.add(listener)
    if interrupted():
        on_interrupt()


def _main_thread_ended() -> None:
    if not (isinstance(getattr(sys, "last_type", None), type) and issubclass(sys.last_type, KeyboardInterrupt)):
        return
    stop_runs()


def stop_runs() -> None:
    """What Ctrl-C of the main thread does to the runs in other threads: each is told to stop, and waited for.

    Called by the hook below when the main thread ended by ``KeyboardInterrupt``; a program
    that catches the ``KeyboardInterrupt`` itself (``caf-hpc demo``) calls it, since the
    hook cannot tell then.
    """
    _interrupted.set()
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener._on_interrupt[0]()
    deadline = time.monotonic() + STOP_WAIT
    for listener in listeners:
        listener._on_interrupt[1].wait(max(0.0, deadline - time.monotonic()))


# Hooks run last-registered first: registering after the thread pools' own hook (which
# ``concurrent.futures`` registers when its thread module is first imported) runs ours before it.
import concurrent.futures.thread  # noqa: E402,F401

_register = getattr(threading, "_register_atexit", None)
if _register is not None:  # every CPython since 3.9; elsewhere, Ctrl-C waits for the threads as before
    try:
        _register(_main_thread_ended)
    except RuntimeError:  # imported while the interpreter is already shutting down
        pass
