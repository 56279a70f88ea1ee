"""Reading the end of an algorithm's log file for error messages."""
from __future__ import annotations

import os
from collections import deque
from pathlib import Path

TAIL_LINES = 20


def tail(path: str | os.PathLike, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path``, or a note saying why there are none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            last = deque(handle.read().decode(errors="replace").splitlines(), maxlen=lines)
    except FileNotFoundError:
        return f"(no log file at {path})"
    except OSError as err:
        return f"(cannot read the log file: {err})"
    if not last:
        return "(the log file is empty)"
    return "\n".join(last)


def log_excerpt(path: str | os.PathLike, lines: int = TAIL_LINES) -> str:
    """'Log: <path>' and its last lines, indented, for inclusion in an error message."""
    body = "\n".join(f"    | {line}" for line in tail(path, lines).splitlines())
    return f"Log: {Path(path)}\n  last {lines} lines:\n{body}"
