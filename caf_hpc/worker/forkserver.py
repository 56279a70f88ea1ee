"""A fork server on each Dask worker, so that a strategy's process starts in milliseconds.

Starting a fresh interpreter and importing the child machinery costs about 100 ms per
strategy. Instead, each worker process starts this server once (``python -m
caf_hpc.worker.forkserver CONTROL_FD``, its ``protocol.Preload`` a frame on standard
input): a single-threaded process that
has imported what a strategy's process needs and never runs a strategy itself. For each request it forks;
the child becomes a session of its own, takes the standard input, log file and message
pipe it was sent, changes into the output directory and runs ``caf_hpc.child.process.run``
exactly as ``python -m caf_hpc.child`` would. The server reports each child's pid and,
when the child ends, its exit code. When the worker goes away, the control socket
closes and the server kills its children and exits.

Heavy set-up is paid here once instead of in every strategy: the runner's ``preload``
list (``ROOT``, ``basf2``, a module that declares C++ classes with cling) is imported and
called before the first fork; an entry from a module beside the steering script is
imported from the source sent with the list (``caf_hpc.child.modules``), and the children
inherit it imported. A worker keeps one server per preload list, so calibrations with
different lists share a worker without sharing their set-up.

A request also names the installed modules its job is unpickled with (``imports``: the
modules of its strategy's and algorithm's classes, which travel by reference, as a basf2
release's do). The server imports each once, after its first child was handed its request
and before the next is forked, so that later strategies do not import it again
(``_import_ahead``): as CAF's own runner forks strategies from a steering process that
imported them. Only a module whose import leaves the process as it found it, but for the
module, is imported so: no thread, process or open file more and no output, tried first in a
throwaway child of its own (a server with a thread more would fork children that inherit
its locks held). A module that fails that check, or to import, is imported by each child
itself, as before: its failure, and its output, stay the strategy's.

Why not ``multiprocessing``'s own forkserver: Dask's worker processes are daemonic, and
a daemonic process may not start ``multiprocessing`` children; and its children could
not be given the log file as their fds 1 and 2 before they run anything.

CAF's own runner forks from the steering process in the same way; this server's state
is pristine, so no strategy sees another's.
"""
from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO

from .. import protocol
from ..caf_names import STRATEGY_MODULES
from ..child import process as child

#: Modules imported once by every server, so that children do not import them again.
PRELOAD = ("caf_hpc.child.process", "caf_hpc.protocol", "cloudpickle", *STRATEGY_MODULES)
_MAX_MESSAGE = 65536
_READY_WAIT = 10.0
_PROBE_WAIT = 10.0  # how long the trial import of a module named by a request may take (``_harmless_import``)


def _send(control: socket.socket, message: dict) -> None:
    control.sendall(json.dumps(message).encode())


# --------------------------------------------------------------------------- server side
#: What went wrong with the preload list, told in every child's log.
_preload_errors: list = []


def _become_command(request: dict, fds: list) -> None:
    """In a forked child: take the sent descriptors and execute the requested command; never returns.

    A collector job's ``bash submit.sh`` starts this way rather than from the worker
    itself, for the one guarantee the server gives its children: when the worker goes
    (killed, out of walltime), the server kills every child's process group, so no
    orphaned basf2 process goes on computing.
    """
    try:
        stdin_fd, out_fd, err_fd = fds
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(stdin_fd, 0)
        for fd in {stdin_fd, out_fd, err_fd} - {0, 1, 2}:
            os.close(fd)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.execve(request["argv"][0], request["argv"], request["env"])
    except BaseException as err:
        os.write(2, f"[caf-hpc] cannot start {request.get('argv')}: {err!r}\n".encode(errors="replace"))
    os._exit(127)


def _become_child(request: dict, fds: list, prepared: child.Prepared) -> None:
    """In a forked child: take the sent descriptors and run the strategy; never returns."""
    if "argv" in request:
        _become_command(request, fds)
    code = 70
    try:
        stdin_fd, log_fd, message_fd = fds
        os.dup2(log_fd, 1)  # first, so that even a failure below is in the algorithm's log
        os.dup2(log_fd, 2)
        for error in _preload_errors:
            os.write(2, error.encode(errors="replace"))
        os.dup2(stdin_fd, 0)
        os.close(stdin_fd)
        os.close(log_fd)
        os.chdir(request["cwd"])
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):  # always, unless something replaced it in the preload
                stream.reconfigure(line_buffering=True, write_through=True)
        code = child.run(message_fd, prepared=prepared)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        child.exit_forked(code)


def _wait_as_spare(requests: socket.socket, control: socket.socket, wakeup: tuple, ready_fd: int,
                   not_ours: list) -> None:
    """In a child forked ahead of its request: leave the server's state, then wait for the request; never returns.

    The fork (a millisecond or more for a server holding ROOT) and the child's own
    session are done before a strategy asks, off its path. A spare whose server ends
    (its request socket closes) exits.
    """
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        for fd in (*wakeup, *not_ours):
            os.close(fd)
        os.setsid()
        os.close(ready_fd)  # from now on the child's process group can be signalled
        prepared = child.prepare()
        data, fds, _, _ = socket.recv_fds(requests, _MAX_MESSAGE, 3)
        requests.close()
    except BaseException:
        os._exit(0)
    if not data:
        os._exit(0)
    _become_child(json.loads(data), fds, prepared)


class _Spare:
    """The server's side of a child forked ahead: its pid, its request socket and its readiness."""

    def __init__(self, control: socket.socket, wakeup: tuple, not_ours: tuple = ()) -> None:
        """Forks the spare; ``not_ours`` are descriptors the server holds for another child, which the
        spare closes (a message pipe held open would keep its strategy's end from being seen)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ready_read, ready_write = os.pipe()
        child.libc().fflush(None)  # nothing the preload left in C buffers may reach a child's log
        pid = os.fork()
        if pid == 0:
            ours.close()
            os.close(ready_read)
            _wait_as_spare(theirs, control, wakeup, ready_write, list(not_ours))
        theirs.close()
        os.close(ready_write)
        self.pid, self._requests, self._ready = pid, ours, ready_read

    def hand(self, data: bytes, fds: list) -> bool:
        """Gives the spare its request once it has its own session; False if it is gone."""
        try:
            select.select([self._ready], [], [], _READY_WAIT)  # EOF once the child has its own session
            socket.send_fds(self._requests, [data], fds)
            return True
        except OSError:
            return False
        finally:
            self.close()

    def close(self) -> None:
        if self._ready >= 0:
            os.close(self._ready)
            self._ready = -1
        self._requests.close()


#: Modules named by a request that the server tried to import ahead (each once: ``_import_ahead``).
_tried_ahead: set = set()


def _import_ahead(names: list, control: socket.socket) -> None:
    """Imports the installed modules a request named that this server has not imported yet, when their import
    is harmless (``_harmless_import``), so that the children forked from now on find them imported.

    Called between a request and the next fork, off every strategy's path but the
    first's. A module that is not imported here is imported by the child that needs it, as
    without this: its failure or its output is the strategy's, in its log.
    """
    for name in names:
        if not isinstance(name, str) or name in sys.modules or name in _tried_ahead:
            continue
        _tried_ahead.add(name)
        if _harmless_import(name, control):
            try:
                importlib.import_module(name)
            except BaseException:  # the child that needs it imports it itself, and says why it fails
                pass


def _process_state() -> tuple:
    """This process's threads (the kernel's: C++ ones too) and open descriptors, as far as the system says."""
    tasks = f"/proc/{os.getpid()}/task"
    threads = len(os.listdir(tasks)) if os.path.isdir(tasks) else threading.active_count()
    fds_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    return threads, frozenset(os.listdir(fds_dir))


def _has_running_children() -> bool:
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return True
    except ChildProcessError:
        return False


def _probe(name: str, control: socket.socket) -> None:
    """In a throwaway child: imports ``name``; exits 0 if that left the process as it was but for the module."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        os.setsid()
        read, write = os.pipe()  # the import's output, if any, shows on it
        os.set_blocking(write, False)
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        before = _process_state()
        importlib.import_module(name)
        sys.stdout.flush()
        sys.stderr.flush()
        child.libc().fflush(None)
        wrote = bool(select.select([read], [], [], 0)[0])
        threads, fds = _process_state()
        if not wrote and threads <= before[0] and fds <= before[1] and not _has_running_children():
            code = 0
    finally:
        os._exit(code)


def _harmless_import(name: str, control: socket.socket) -> bool:
    """Whether importing ``name`` starts no thread or process, opens no file and writes nothing, tried in a
    child forked for it (and ended with whatever it started): what the server imports must not change
    what its children inherit but for the module itself."""
    child.libc().fflush(None)
    pid = os.fork()
    if pid == 0:
        _probe(name, control)
    deadline, pause, status = time.monotonic() + _PROBE_WAIT, 0.0005, None
    while status is None and time.monotonic() < deadline:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status = wait_status
        else:
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
    try:
        os.killpg(pid, signal.SIGKILL)  # what it started, and itself if it took too long
    except (ProcessLookupError, PermissionError):
        pass
    if status is None:
        os.waitpid(pid, 0)
        return False
    return os.waitstatus_to_exitcode(status) == 0


def _reap(children: set, control: socket.socket, spare: _Spare | None) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        if spare is None or pid != spare.pid:  # a spare that died unused was never anyone's
            _send(control, {"pid": pid, "returncode": os.waitstatus_to_exitcode(status)})


def serve(control: socket.socket) -> None:
    """Forks a child per request until the control socket closes, then kills the children.

    A child is always forked ahead (the spare): a request goes to it, and the next spare
    is forked after the answer, while the strategy runs.
    """
    children: set = set()
    wakeup = os.pipe()
    os.set_blocking(wakeup[1], False)
    signal.set_wakeup_fd(wakeup[1])
    signal.signal(signal.SIGCHLD, lambda *_: None)
    spare: _Spare | None = None
    try:
        while True:
            if spare is None:
                spare = _Spare(control, wakeup)
                children.add(spare.pid)
            ready, _, _ = select.select([control.fileno(), wakeup[0]], [], [])
            if wakeup[0] in ready:
                os.read(wakeup[0], 4096)
                _reap(children, control, spare)
                if spare.pid not in children:  # died unused (killed by someone): fork another
                    spare.close()
                    spare = None
            if control.fileno() in ready:
                try:
                    data, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 3)
                except ConnectionError:
                    data = b""
                if not data:
                    return
                request = json.loads(data)
                while spare is None or not spare.hand(data, fds):
                    spare = _Spare(control, wakeup, tuple(fds))
                    children.add(spare.pid)
                for fd in fds:
                    os.close(fd)
                pid, spare = spare.pid, None
                _send(control, {"id": request["id"], "pid": pid})
                _reap(children, control, None)
                _import_ahead(request.get("imports", ()), control)  # before the next spare is forked
    finally:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def main(argv: list) -> None:
    """``python -m caf_hpc.worker.forkserver CONTROL_FD`` with its ``Preload`` on stdin; ends when its worker does."""
    os.environ["PYTHONUNBUFFERED"] = "1"
    preload = pickle.loads(protocol.read_frame(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for module in PRELOAD:
        importlib.import_module(module)
    _preload_errors.extend(child.preload(preload))
    child.libc()
    serve(socket.socket(fileno=int(argv[1])))
    # Its worker is gone and its children are killed: nothing is left to tidy. The preload's exit
    # handlers (ROOT's teardown takes a second or more) would only keep it running, orphaned.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --------------------------------------------------------------------------- worker side
class ForkedChild:
    """The worker's handle on a forked child, shaped like ``subprocess.Popen`` where it is used."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] | None = None  # the job's pipe, set by whoever feeds it (as Popen's)

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        code = self._server.exit_code(self.pid, timeout=timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"forked strategy process {self.pid}", timeout or 0.0)
        self.returncode = code
        return code


class ForkServerError(RuntimeError):
    """The fork server is gone or did not answer."""


class ForkServer:
    """The worker side: starts the server and asks it for children, from any thread."""

    def __init__(self, preload: protocol.Preload | tuple = (), start_timeout: float = 60.0) -> None:
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = subprocess.Popen([sys.executable, "-m", "caf_hpc.worker.forkserver", str(theirs.fileno())],
                                         pass_fds=(theirs.fileno(),), stdin=subprocess.PIPE)
        theirs.close()
        assert self._process.stdin is not None  # stdin=PIPE
        try:  # the server reads it first thing; a server that died at start is told by the control socket
            self._process.stdin.write(protocol.frame(pickle.dumps(protocol.Preload.of(preload),
                                                                  protocol=pickle.HIGHEST_PROTOCOL)))
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        self._start_timeout = start_timeout
        self._send_lock = threading.Lock()
        self._changed = threading.Condition()
        self._pids: dict = {}
        self._exits: dict = {}
        self._next_id = 0
        self.alive = True
        threading.Thread(target=self._listen, daemon=True, name="caf-hpc-forkserver").start()

    def _listen(self) -> None:
        while True:
            try:
                data = self._control.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            with self._changed:
                if not data:
                    self.alive = False
                    self._changed.notify_all()
                    return
                message = json.loads(data)
                if "id" in message:
                    self._pids[message["id"]] = message["pid"]
                else:
                    self._exits[message["pid"]] = message["returncode"]
                self._changed.notify_all()

    def spawn(self, stdin_fd: int, log_fd: int, message_fd: int, cwd: str, imports: tuple = ()) -> ForkedChild:
        """Forks a strategy process with these descriptors as stdin, stdout+stderr and message pipe.

        ``imports``: installed modules its job is unpickled with, which the server then imports for the
        children after it, where that is harmless (``_import_ahead``)."""
        request: dict = {"cwd": cwd}
        if imports:
            request["imports"] = list(imports)
        return self._request(request, [stdin_fd, log_fd, message_fd])

    def spawn_command(self, argv: list, env: dict, cwd: str, stdin_fd: int, stdout_fd: int,
                      stderr_fd: int) -> ForkedChild:
        """Forks and executes ``argv`` (a full path first) in a session of its own, with exactly ``env``."""
        return self._request({"cwd": cwd, "argv": list(argv), "env": dict(env)}, [stdin_fd, stdout_fd, stderr_fd])

    def _request(self, request: dict, fds: list) -> ForkedChild:
        with self._changed:
            self._next_id += 1
            request_id = self._next_id
        with self._send_lock:
            socket.send_fds(self._control, [json.dumps({"id": request_id, **request}).encode()], fds)
        with self._changed:
            if not self._changed.wait_for(lambda: request_id in self._pids or not self.alive,
                                          timeout=self._start_timeout):
                raise ForkServerError(f"the fork server did not answer within {self._start_timeout:g} s "
                                      "(its preload included)")
            if request_id not in self._pids:
                raise ForkServerError("the fork server ended")
            return ForkedChild(self, self._pids.pop(request_id))

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or not self.alive, timeout=timeout)
            if pid in self._exits:
                return self._exits.pop(pid)
            if not self.alive:
                raise ForkServerError(f"the fork server ended before reporting on process {pid}")
            return None

    def close(self) -> None:
        try:
            self._control.shutdown(socket.SHUT_RDWR)  # wakes the listener; the server sees EOF
        except OSError:
            pass
        self._control.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()


_servers: dict = {}
_server_lock = threading.Lock()


def shared(preload: protocol.Preload | tuple = ()) -> ForkServer:
    """This process's fork server for ``preload``, started on first use and again if it died."""
    key = protocol.Preload.of(preload)
    with _server_lock:
        server = _servers.get(key)
        if server is None or not server.alive:
            server = _servers[key] = ForkServer(key)
        return server


if __name__ == "__main__":
    main(sys.argv)
