"""``flock`` for the package: one exclusive lock per open file, dropped when the file is closed.

Three places lock a file: a run's output directory (``steering.directory_lock``, held for
the whole run and not waited for), the TLS key directory of a site (``sites.security``, while
two calibrations might write the keys together) and a local conditions database
(``extras.standins.database``, while a strategy appends a payload). They share these calls,
so that the lock is taken one way. ``flock`` belongs to the open file description: it is
dropped by ``unlock``, by closing the file, or by the end of the holding process, however
it ends.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

FileLike = int | IO


def lock(file: FileLike, wait: bool = True) -> None:
    """Takes the exclusive lock of ``file`` (a descriptor or an open file).

    With ``wait=False``, raises ``BlockingIOError`` at once when another open file holds it.
    Other ``OSError``s say that the file system refuses locks (``ENOLCK``, ``EOPNOTSUPP``).
    """
    fcntl.flock(file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)


def unlock(file: FileLike) -> None:
    fcntl.flock(file, fcntl.LOCK_UN)


@contextlib.contextmanager
def locked(file: FileLike) -> Iterator[None]:
    """The exclusive lock of an open ``file``, waited for, held for the block."""
    lock(file)
    try:
        yield
    finally:
        unlock(file)


@contextlib.contextmanager
def locked_path(path: str | os.PathLike, mode: int = 0o600) -> Iterator[None]:
    """The exclusive lock of the file at ``path`` (made with ``mode`` if missing), waited for, held for the block."""
    fd = os.open(Path(path), os.O_CREAT | os.O_RDWR, mode)
    try:
        with locked(fd):
            yield
    finally:
        os.close(fd)
