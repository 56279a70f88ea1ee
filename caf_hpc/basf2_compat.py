"""The one place that decides between real basf2/CAF and the package's stand-ins.

Importing this never needs basf2: when ``basf2`` imports, CAF's own base classes,
namedtuples and ``B2INFO``/``B2ERROR``/``B2DEBUG`` are used, so results and errors are
the very types CAF checks; otherwise the stand-ins and the ``caf_hpc`` logger.

A steering script imports CAF's own names from here too, so that it runs unchanged with
basf2 and without it::

    from caf_hpc.basf2_compat import CAF, Calibration, SimpleRunByRun, register_module

These (``STEERING_NAMES``, from ``caf_hpc.caf_names``) are imported on first use only: the
runner's processes import this module and must not pay for CAF's framework (or ROOT, which
basf2's imports). What the runner itself needs of CAF without basf2 (the runner's base
class, ``RunnerError``, ``ExpRun``/``IoV``/``IoV_Result``, the collector backend's
``Backend``/``Result``) is the package's own ``caf_hpc.caf_types``, which the stand-ins
re-export: the runner never imports ``caf_hpc.extras``.
"""
from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from .caf_names import STEERING_NAMES, basf2_importable

HAVE_BASF2 = basf2_importable()

if HAVE_BASF2:  # pragma: no cover - needs a basf2 release
    import basf2
    from caf.runners import AlgorithmsRunner, RunnerError
    from caf.utils import ExpRun, IoV, IoV_Result

    # basf2's log lines do not say where they come from: say it in the message
    def log_info(message: str) -> None:
        basf2.B2INFO(f"caf-hpc: {message}")

    def log_error(message: str) -> None:
        basf2.B2ERROR(f"caf-hpc: {message}")

    def log_debug(message: str) -> None:
        basf2.B2DEBUG(29, f"caf-hpc: {message}")

    def log_warning(message: str) -> None:
        basf2.B2WARNING(f"caf-hpc: {message}")
else:
    from .caf_types import AlgorithmsRunner, ExpRun, IoV, IoV_Result, RunnerError

    _logger = logging.getLogger("caf_hpc")

    def log_info(message: str) -> None:
        """INFO on the ``caf_hpc`` logger; while the program configured no logging, on stderr instead.

        Inside basf2, ``B2INFO`` shows by default, and so the runner's progress shows.
        A steering script without basf2 should not look hung either. Once the program
        configures logging (a root handler, or a level for ``caf_hpc``), it decides.
        """
        if not logging.getLogger().handlers and _logger.level == logging.NOTSET and \
                not _logger.isEnabledFor(logging.INFO):
            sys.stderr.write(f"[INFO] caf-hpc: {message}\n")
        else:
            _logger.info(message)

    # stacklevel=2: the record names the caller's file and line, not this module's
    def log_error(message: str) -> None:
        _logger.error(message, stacklevel=2)

    def log_debug(message: str) -> None:
        _logger.debug(message, stacklevel=2)

    def log_warning(message: str) -> None:
        _logger.warning(message, stacklevel=2)


def __getattr__(name: str) -> Any:
    if name in STEERING_NAMES:
        real, standin = STEERING_NAMES[name]
        value = getattr(importlib.import_module(real if HAVE_BASF2 else standin), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HAVE_BASF2", "STEERING_NAMES", *STEERING_NAMES, "AlgorithmsRunner", "RunnerError", "ExpRun", "IoV",
           "IoV_Result", "log_info", "log_error", "log_debug", "log_warning"]
