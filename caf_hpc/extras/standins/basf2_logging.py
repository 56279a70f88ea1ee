"""basf2's logging switches as CAF's ``AlgorithmMachine._setup_logging`` calls them.

At the start of every strategy CAF calls ``basf2.reset_log()``,
``basf2.set_log_level(LogLevel.INFO)`` and ``basf2.log_to_file("<output_dir>/<Alg>_stdout")``.
basf2 opens that file for writing **with truncation** (a C++ ``std::ofstream`` in
``ios::out`` mode) unless ``append=True`` (``ios::app``), and writes through its own
file offset. This module does the same with Python logging: ``mode="w"`` truncates and
keeps an offset of its own, ``mode="a"`` opens with ``O_APPEND``. So whatever else writes
to that file (the runner sends the strategy process's fds 1 and 2 there) meets exactly
what it would meet under basf2; ``caf_hpc.child`` makes such a call append.
"""
from __future__ import annotations

import logging
from enum import IntEnum

FORMAT = "[%(levelname)s] %(name)s: %(message)s"


class LogLevel(IntEnum):
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    RESULT = logging.INFO + 5
    WARNING = logging.WARNING
    ERROR = logging.ERROR
    FATAL = logging.CRITICAL


def reset_log() -> None:
    """Removes every logging destination."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def set_log_level(level: int) -> None:
    logging.getLogger().setLevel(int(level))


def log_to_file(filename: str, append: bool = False) -> None:
    """Adds a text file as a logging destination: truncated first unless ``append``."""
    handler = logging.FileHandler(filename, mode="a" if append else "w")
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(handler)
