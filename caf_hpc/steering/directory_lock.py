"""One run per output directory: a lock that dies with its holder.

Two runs writing into one directory corrupt each other silently (payloads twice in
``database.txt``, logs of both runs in one file). A run holds a lock file with ``flock``:
inside the directory, or beside it (``.NAME.caf-hpc.lock``) for a directory that is
emptied and made again, as CAF does with ``algorithm_output`` before every run (a lock
file inside would go with it, and a second run would lock a new one). The kernel drops it
when the holding process ends, however it ends, and on NFSv4 the lock is a lease that expires
when the holder's node crashed. A flock belongs
to the open file, which a forked child shares: a child of the steering process forked while the
lock is held (``multiprocessing`` with its fork start method) would hold it on after the run's
process ended, so every forked child closes its copy at once (``os.register_at_fork``).
The file says who holds it (host, pid, what, since when) for the message a second run
gets.

Some parallel file systems refuse locks (``ENOLCK``, ``EOPNOTSUPP``). There the holder
rewrites the file every ``HEARTBEAT`` seconds instead, and a lock whose last beat is
older than ``STALE`` counts as dead, so a crashed node does not hold it for ever.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
from pathlib import Path

from .. import file_lock

LOCK_NAME = ".caf-hpc.lock"
HEARTBEAT = 20.0
STALE = 120.0
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


#: Descriptors of the locks this process holds, for a forked child to close.
_held: set = set()


def _forget_in_child() -> None:
    """In a forked child: close the parent's lock files, so that the locks end with the parent."""
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class DirectoryInUse(RuntimeError):
    """Another run holds the directory; the message names it and how to go on."""


class DirectoryLock:
    """Held from ``acquire`` until ``release`` (or the end of the process)."""

    def __init__(self, directory: Path, fd: int, heartbeat: threading.Event | None) -> None:
        self.directory = directory
        self._fd = fd
        self._stop_beating = heartbeat
        self._pid = os.getpid()  # a forked child's copy was closed at the fork: it has nothing to release
        _held.add(fd)

    @classmethod
    def acquire(cls, directory: str | os.PathLike, what: str, beside: bool = False) -> DirectoryLock:
        """Takes the directory for ``what`` (e.g. "calibration demo"), or raises DirectoryInUse at once.

        ``beside``: the lock file is next to the directory, not in it.
        """
        directory = Path(directory)
        if beside:
            directory.parent.mkdir(parents=True, exist_ok=True)
            path = directory.parent / f".{directory.name}{LOCK_NAME}"
        else:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            file_lock.lock(fd, wait=False)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise DirectoryInUse(_in_use(directory, holder)) from None
        except OSError as err:
            if err.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            holder = _read(fd)
            if holder and time.time() - holder.get("beat", 0) < STALE and not _dead_here(holder):
                os.close(fd)
                raise DirectoryInUse(_in_use(directory, holder)) from None
            beating = threading.Event()
            lock = cls(directory, fd, beating)
            _write(fd, what)
            threading.Thread(target=lock._beat, args=(what,), daemon=True, name="caf-hpc-lock").start()
            return lock
        _write(fd, what)
        return cls(directory, fd, None)

    def _beat(self, what: str) -> None:
        while self._stop_beating is not None and not self._stop_beating.wait(HEARTBEAT):
            try:
                _write(self._fd, what)
            except OSError:
                return

    def release(self) -> None:
        if self._fd < 0 or os.getpid() != self._pid:
            return
        _held.discard(self._fd)
        if self._stop_beating is not None:
            self._stop_beating.set()
        try:
            os.ftruncate(self._fd, 0)  # no holder any more (the file stays: removing it would race)
        except OSError:
            pass
        os.close(self._fd)  # drops the flock
        self._fd = -1

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _write(fd: int, what: str) -> None:
    record = {"host": socket.gethostname(), "pid": os.getpid(), "what": what,
              "since": time.strftime("%Y-%m-%d %H:%M:%S"), "beat": time.time()}
    data = (json.dumps(record) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def _dead_here(holder: dict) -> bool:
    """A heartbeat holder on this host whose process is gone."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder.get("pid", 0)), 0)
        return False
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False


def _in_use(directory: Path, holder: dict) -> str:
    who = (f"{holder.get('what', 'a run')}, process {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
           f"since {holder.get('since', '?')}") if holder else "another process"
    return (f"the output directory {directory} is in use by {who}. Two runs in one directory would mix their "
            "payloads and logs: wait for that run to end, or give this one another directory")
