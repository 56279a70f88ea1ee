"""The process in which one strategy runs.

Forked by the worker's fork server (``caf_hpc.worker.forkserver``), or started as
``python -m caf_hpc.child MESSAGE_FD`` (its ``protocol.Preload`` the first frame on
standard input), with file descriptors 1 and 2
already on the algorithm's log file, the pickled ``StrategyCall`` on standard input and a
pipe for the strategy's messages (``caf_hpc.protocol``) on ``MESSAGE_FD``. Whatever the strategy
does to the process (chdir, logging, conditions, a crash) ends with it. When the worker goes
away, standard input closes and the child ends itself and everything it started, so no orphan
keeps computing.

The algorithm's log takes every line of every stream, in order: C ``stdout`` is made
line-buffered (``std::cout``, synchronised with it, follows), and basf2's
``log_to_file`` of that same file, which would truncate it and then write over what
fds 1 and 2 append, is made to append too.
"""
from __future__ import annotations

import logging
import os
import reprlib
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

from .. import private_interfaces, protocol
from .. import root_helpers as cpp
from ..caf_names import LOGGING_MODULES
from . import modules


class PipeQueue:
    """The ``queue`` a strategy gets: ``put`` checks CAF's rules and sends to the worker.

    Results go out through a sender thread that pickles whatever has piled up as one
    frame: a result class that travels by value is pickled once per frame instead of once
    per result, and the strategy never waits for the pipe. The final state, a violation
    and a raised exception wait until everything before them is written, so that nothing
    put before the process ends can be lost; their frame is followed by ``protocol.ENDING``
    (the end comes next: the worker sends these last frames with the end). ``close`` ends
    the pipe once everything is written, before the process's exit handlers run.
    """

    def __init__(self, fd: int | None = None) -> None:
        self._fd = fd  # None until ``attach``: nothing is sent before
        self._changed = threading.Condition()
        self._pending: list = []
        self._writing = False
        self._broken: BaseException | None = None
        self._ending = False  # the batch being collected holds a message after which the end comes
        self.final_state_sent = False
        threading.Thread(target=self._send_loop, daemon=True, name="caf-hpc-sender").start()

    def put(self, message: Any, block: bool = True, timeout: Any = None) -> None:
        with self._changed:
            try:
                protocol.check_message(message, self.final_state_sent)
            except protocol.ProtocolError as err:
                self._add(protocol.Violation(str(err)))
                self._flush_locked()
                raise
            if message["type"] == protocol.RESULT:
                self._add(protocol.Result(message["value"]))
                return
            self.final_state_sent = True
            self._add(protocol.FinalState(message["value"]))
            self._flush_locked()

    def attach(self, fd: int) -> None:
        """Sends to ``fd`` from now on (a queue made before its process had the pipe, by ``prepare``)."""
        self._fd = fd

    def report_exception(self, text: str) -> None:
        with self._changed:
            self._add(protocol.Raised(text))
            self._flush_locked()

    def flush(self) -> None:
        """Returns once everything put so far is written (or the pipe broke)."""
        with self._changed:
            self._flush_locked()

    def close(self) -> None:
        """Writes what is left, then closes the pipe: the worker sees the end without waiting for the
        process's exit (its exit handlers, the kernel's freeing of its memory). Nothing is sent after."""
        with self._changed:
            self._flush_locked()
            fd, self._fd = self._fd, None
            if self._broken is None:
                self._broken = BrokenPipeError("the strategy's process closed its message pipe")
        if fd is not None:
            os.close(fd)

    def _add(self, message: protocol.ChildMessage) -> None:
        if self._broken is not None:
            raise BrokenPipeError(f"the worker stopped reading this strategy's messages: {self._broken!r}")
        self._pending.append(message)
        self._ending = self._ending or not isinstance(message, protocol.Result)
        self._changed.notify_all()

    def _flush_locked(self) -> None:
        self._changed.wait_for(lambda: (not self._pending and not self._writing) or self._broken is not None)

    def _send_loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._pending))
                batch, self._pending, self._writing, fd = self._pending, [], True, self._fd
                ending, self._ending = self._ending, False
            try:
                if fd is None:
                    raise BrokenPipeError("the strategy's process has no message pipe (PipeQueue.attach)")
                data = protocol.frame(_pickled(batch))
                protocol.write_all(fd, data + protocol.frame(protocol.ENDING) if ending else data)
            except BaseException as err:
                with self._changed:
                    self._broken = err
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()
            if self._broken is not None:
                return


def _pickled(batch: list) -> bytes:
    """The batch as one pickle; a message that cannot be pickled is replaced by a Violation naming it."""
    try:
        return protocol.dumps(batch)
    except Exception:  # find which, and say so, instead of losing the batch
        sendable = []
        for message in batch:
            try:
                protocol.dumps(message)
                sendable.append(message)
            except Exception as err:
                sendable.append(protocol.Violation(
                    f"a message cannot be pickled to reach the runner ({type(err).__name__}: {err}): "
                    f"{reprlib.repr(message)}"))
        return protocol.dumps(sendable)


def _end_with_parent(job_read: threading.Event) -> None:
    """Kills this process group once the supervising worker is gone (stdin reaches EOF).

    Waits until the job's frame is read: before, standard input is not the worker's pipe yet
    (in the fork server's spare child), or the frame is still on it.
    """
    job_read.wait()
    while os.read(0, 65536):
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


def preload(setup: protocol.Preload | Iterable[str]) -> list[str]:
    """Imports each ``module`` and calls each ``module:function``; returns what failed, as log text.

    The local modules sent along (``setup.modules``) are made importable first, so that an
    entry from a module beside the steering script is imported for real, its top-level code
    included. A failure does not stop the others: the strategy that needs the failed one
    fails with its own error, and this text, in its log, says why.
    """
    setup = protocol.Preload.of(setup)
    modules.install(setup.modules)
    errors = []
    for entry in setup.entries:
        try:
            modules.run_preload(entry)
        except BaseException:
            errors.append(f"caf-hpc: preload {entry!r} failed on this worker:\n{traceback.format_exc()}")
    return errors


def _line_buffer_c_stdout() -> None:
    """C stdio buffers a file fully: ``printf`` and ``std::cout`` lines would reach the log
    only at exit, after Python's. Line buffering keeps the streams in order."""
    import ctypes

    stdout = ctypes.c_void_p.in_dll(libc(), "stdout")
    libc().fflush(stdout)
    libc().setvbuf(stdout, None, 1, 0)  # _IOLBF


def _append_basf2_log() -> None:
    """Makes basf2's ``log_to_file`` of the file fds 1 and 2 write to append, as they do.

    CAF's ``AlgorithmMachine._setup_logging`` calls ``basf2.log_to_file(<the algorithm's
    log>)`` at the start of every strategy; basf2 opens it truncating, with its own file
    offset: all output before would be erased and all C/C++ output after overwritten by
    basf2's own lines. With ``append=True`` (``ios::app``, ``O_APPEND``) every write of
    both goes to the end. Applied to real basf2 and to its stand-in, whichever is loaded.
    """
    log = os.fstat(1)
    for name in LOGGING_MODULES:
        module = sys.modules.get(name)
        original = getattr(module, "log_to_file", None)
        if module is None or original is None or getattr(original, "caf_hpc_appends", False):
            continue

        def log_to_file(filename: str, append: bool = False, _original: Any = original) -> Any:
            try:
                same = os.stat(filename)
                append = append or (same.st_dev, same.st_ino) == (log.st_dev, log.st_ino)
            except OSError:
                pass  # not there yet: not the file fds 1 and 2 are on
            return _original(filename, append)

        log_to_file.caf_hpc_appends = True  # type: ignore[attr-defined]
        setattr(module, "log_to_file", log_to_file)  # noqa: B010 (a module typed without it)


def _load_job(data: bytes) -> Any:
    """The pickled ``StrategyCall``; a C++ object whose class this process lacks is named."""
    try:
        if "ROOT" in sys.modules:  # preloaded: ROOT warns about interpreted classes it streams fine
            with cpp.quiet_streaming():
                return protocol.loads(data)
        return protocol.loads(data)
    except TypeError as err:
        if "attempt to bind C++ object w/o class" not in str(err):
            raise
        raise RuntimeError("the algorithm's C++ object cannot be rebuilt in the worker's process: its class is not "
                           "declared there (ROOT: attempt to bind C++ object w/o class). Declare it on the workers "
                           "with runner_for(preload=['my_calibration.algorithms:declare']) or the site's "
                           "runner: {preload: [...]}, or name a factory with runner_for(factories=...)") from None


class Prepared(NamedTuple):
    """What ``prepare`` set up: the strategy's queue (not attached yet) and the signal that the job is read."""

    queue: PipeQueue
    job_read: threading.Event


def prepare() -> Prepared:
    """Sets up what a strategy's process needs before it knows its job, and before its
    descriptors are the strategy's: the queue's sender thread, the thread that ends the
    process with its worker, C ``stdout``'s line buffering.

    The fork server's spare child does this while it waits for its request, off the
    strategy's path (each thread's start is a context switch, a millisecond on a busy machine).
    """
    queue = PipeQueue()
    job_read = threading.Event()
    threading.Thread(target=_end_with_parent, args=(job_read,), daemon=True, name="end-with-parent").start()
    warnings.filterwarnings("ignore", message=cpp.ALPHA_NOTICE)  # unpickling may import ROOT
    _line_buffer_c_stdout()  # before anything is written to it
    return Prepared(queue, job_read)


def run(message_fd: int, preload_setup: protocol.Preload | Iterable[str] = (),
        prepared: Prepared | None = None) -> int:
    """Runs the strategy of the job on standard input; returns the process's exit code."""
    os.set_inheritable(message_fd, False)  # programs the strategy starts must not hold the pipe open
    queue, job_read = prepared or prepare()
    queue.attach(message_fd)
    data = protocol.read_frame(sys.stdin.fileno())
    job_read.set()
    for error in preload(preload_setup):
        sys.stderr.write(error)
    _configure_logging()
    try:
        job = _load_job(data)
        _append_basf2_log()
        algorithm = job.rebuild_algorithm(modules.load)
        strategy = algorithm.strategy(algorithm)
        strategy.setup_from_dict(job.params)
        strategy.run(job.iov, job.iteration, queue)
    except BaseException as err:
        traceback.print_exc()
        sys.stderr.flush()
        queue.report_exception(f"{type(err).__name__}: {err}")
        return 1
    finally:
        queue.close()
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
        private_interfaces.run_exit_hooks()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        libc().fflush(None)
    finally:
        os._exit(code)
