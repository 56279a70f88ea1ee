"""Ctrl-C of a steering script: every run stopped, its cluster gone, and one line for the user.

A terminal's Ctrl-C sends SIGINT to its whole foreground process group. The processes
of the cluster are not in it (the local cluster's scheduler and workers, and the batch
commands, start in sessions of their own: ``dask_adapter``), so only the steering
process sees it, as ``KeyboardInterrupt`` in its main thread:

* A run in the main thread (the demo, a script that calls ``run()`` itself): the
  ``KeyboardInterrupt`` passes through ``run()``, which cancels its strategy on the way
  out (the strategy's process is killed with everything it started).
* Runs in threads of their own, as CAF's: CAF runs each calibration in a non-daemon
  thread and waits for them in the main thread. The interpreter would wait for those
  threads, each blocked in a runner that waits for its strategy, which may run for
  hours. So when the main thread has ended by ``KeyboardInterrupt``, every run still
  going is told to stop: it cancels its strategy and returns ``FAILED``; a run started
  after that returns ``FAILED`` at once. A main thread that ends normally leaves the
  threads to finish, as Python always does. The hook is CPython's private
  ``threading._register_atexit`` (``private_interfaces.register_before_thread_join``): called
  after the main thread ended and before the interpreter joins the other threads
  (``concurrent.futures`` stops its workers through it). ``sys.last_type`` says how the main
  thread ended.

Then the interpreter exits and closes the clusters (``clusters.close_all``). What the
user sees is one line, ``caf-hpc: interrupted (Ctrl-C); stopped calibration NAME at
algorithm NAME``, instead of Python's traceback of the main thread (which in CAF points
into its polling loop): once a run has started, ``sys.excepthook`` says it for a
``KeyboardInterrupt`` and hands every other exception to the hook that was there before.
The process still ends by SIGINT, as Python ends it after an unhandled
``KeyboardInterrupt`` (a shell shows exit status 130).
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from . import private_interfaces

_interrupted = threading.Event()
_lock = threading.Lock()
_runs: dict = {}  # in the order they started, as keys
_stopped: list = []
_said = threading.Event()


class Interrupted(Exception):
    """The steering script was interrupted (Ctrl-C) while this run went on in a thread of its own."""


def interrupted() -> bool:
    """True once the main thread ended by Ctrl-C."""
    return _interrupted.is_set()


#: How long the interpreter's exit waits for the runs it told to stop.
STOP_WAIT = 10.0


class Run:
    """One ``run()`` in progress, as Ctrl-C sees it: what it runs now, and how it is told to stop.

    Use as a context manager around the run; the interpreter's exit after Ctrl-C waits
    (at most ``STOP_WAIT`` s) until every run it told to stop has left it. The wait
    matters: right after this hook, the interpreter stops its thread pools, and Dask runs
    a cancelled future's callbacks in one; a runner that cancels its strategy after
    that would print tracebacks.
    """

    def __init__(self, calibration: str) -> None:
        self.calibration = calibration
        #: The algorithm whose strategy runs now, for the line the user sees.
        self.algorithm: str | None = None
        self._on_interrupt: Callable[[], None] | None = None
        self._done = threading.Event()

    def on_interrupt(self, callback: Callable[[], None]) -> None:
        """Calls ``callback()`` (from the interpreter's exit) when the main thread ends by Ctrl-C."""
        self._on_interrupt = callback
        if interrupted():
            callback()

    def stopped(self) -> None:
        """This run was stopped by Ctrl-C: the line the user sees names it."""
        with _lock:
            _stopped.append(self.what_runs())

    def what_runs(self) -> str:
        """What the run runs now, as the line the user sees names it: 'calibration NAME at algorithm NAME'."""
        return f"calibration {self.calibration}" + (f" at algorithm {self.algorithm}" if self.algorithm else "")

    def __enter__(self) -> Run:
        with _lock:
            _runs[self] = None
        return self

    def __exit__(self, *exc: Any) -> None:
        with _lock:
            _runs.pop(self, None)
        self._done.set()


def what_ctrl_c_stopped() -> str:
    """What Ctrl-C stopped: the runs stopped so far and those still being stopped."""
    with _lock:
        named = list(_stopped)
        named += [text for run in _runs if (text := run.what_runs()) and text not in named]
    return "interrupted (Ctrl-C)" + (f"; stopped {', '.join(named)}" if named else "")


def say() -> None:
    """Tells the user, once, on stderr, that Ctrl-C stopped the script and what it stopped."""
    with _lock:
        if _said.is_set():
            return
        _said.set()
    sys.stderr.write(f"caf-hpc: {what_ctrl_c_stopped()}\n")
    sys.stderr.flush()


def _excepthook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        say()
        return
    _previous_excepthook(kind, value, trace)


_previous_excepthook = sys.excepthook


def install_excepthook() -> None:
    """Has an unhandled ``KeyboardInterrupt`` say ``say()``'s line instead of Python's traceback."""
    global _previous_excepthook
    if sys.excepthook is not _excepthook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Ctrl-C waits until the block has ended, then raises ``KeyboardInterrupt`` as it would have.

    For short steps that an interruption would leave half done, with no object to tidy:
    a Dask client whose start was interrupted is closed by the interpreter's exit, through
    the garbage collector, after Dask's 60 s wait for a loop that has stopped. Only the
    main thread gets ``KeyboardInterrupt``; elsewhere, or under a SIGINT handler other
    than Python's own, this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list = []
    signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if caught:
            raise KeyboardInterrupt


def _main_thread_ended() -> None:
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if not isinstance(last, KeyboardInterrupt):
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
        runs = list(_runs)
    for run in runs:
        if run._on_interrupt is not None:
            run._on_interrupt()
    deadline = time.monotonic() + STOP_WAIT
    for run in runs:
        run._done.wait(max(0.0, deadline - time.monotonic()))
    say()  # if the excepthook did not (another replaced it)
    late = [run.what_runs() for run in runs if not run._done.is_set()]
    if late:
        sys.stderr.write(f"caf-hpc: {', '.join(late)} did not stop within {STOP_WAIT:g} s of Ctrl-C\n")


# Hooks run last-registered first: registering after the thread pools' own hook (which
# ``concurrent.futures`` registers when its thread module is first imported) runs ours before it.
import concurrent.futures.thread  # noqa: E402,F401

# Without such a hook (not CPython 3.9 or later), Ctrl-C waits for the threads as before.
private_interfaces.register_before_thread_join(_main_thread_ended)
