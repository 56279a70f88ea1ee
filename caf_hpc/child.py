"""The process in which one strategy runs.

Forked by the worker's fork server (``caf_hpc.forkserver``), or started as
``python -m caf_hpc.child MESSAGE_FD``, with file descriptors 1 and 2 already on the
algorithm's log file, the pickled ``StrategyJob`` on standard input and a pipe for messages on
``MESSAGE_FD``. Whatever the strategy does to the process (chdir, logging, conditions,
a crash) ends with it. When the worker goes away, standard input closes and the child
ends itself and everything it started, so no orphan keeps computing.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from typing import Any

from . import messages


class PipeQueue:
    """The ``queue`` a strategy gets: ``put`` checks the message and sends it to the worker."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self.final_state_sent = False

    def put(self, message: Any, block: bool = True, timeout: Any = None) -> None:
        with self._lock:
            messages.check_message(message, self.final_state_sent)
            self._send(messages.MESSAGE, message)
            if message["type"] == messages.FINAL_STATE:
                self.final_state_sent = True

    def report_exception(self, text: str) -> None:
        with self._lock:
            self._send(messages.EXCEPTION, text)

    def _send(self, kind: str, value: Any) -> None:
        messages.write_all(self._fd, messages.frame(messages.dumps((kind, value))))


def _end_with_parent(stdin_fd: int) -> None:
    """Kills this process group once the supervising worker is gone (stdin reaches EOF)."""
    while os.read(stdin_fd, 65536):
        pass
    if os.getpgrp() == os.getpid():  # started as a session of its own: take its children along
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _configure_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if "basf2" in sys.modules:  # pragma: no cover - needs a basf2 release
        import basf2

        basf2.reset_log()
        basf2.logging.add_console()


def run(message_fd: int) -> int:
    """Runs the strategy of the job on standard input; returns the process's exit code."""
    os.set_inheritable(message_fd, False)  # programs the strategy starts must not hold the pipe open
    queue = PipeQueue(message_fd)
    stdin_fd = sys.stdin.fileno()
    job = messages.loads(messages.read_frame(stdin_fd))
    threading.Thread(target=_end_with_parent, args=(stdin_fd,), daemon=True, name="end-with-parent").start()
    _configure_logging()
    try:
        algorithm = job.rebuild_algorithm()
        strategy = algorithm.strategy(algorithm)
        strategy.setup_from_dict(job.params)
        strategy.run(job.iov, job.iteration, queue)
    except BaseException as err:  # noqa: B902 - everything the strategy raises is reported
        traceback.print_exc()
        sys.stderr.flush()
        queue.report_exception(f"{type(err).__name__}: {err}")
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


_libc: Any = None


def libc() -> Any:
    """The C library, loaded once (the fork server does it before forking)."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None)
    return _libc


def exit_forked(code: int) -> None:
    """Ends a forked child as a normal interpreter exit would: atexit hooks, Python and C
    buffers flushed. (``sys.exit`` would unwind into the fork server's loop instead.)"""
    try:
        import atexit

        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        libc().fflush(None)
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(run(int(sys.argv[1])))  # a normal exit, so C stdio buffers are flushed too
