"""The one place that decides between real basf2/CAF and the package's stand-ins.

Importing this never needs basf2: when ``basf2`` imports, CAF's own base classes,
namedtuples and ``B2INFO``/``B2ERROR``/``B2DEBUG`` are used, so results and errors are
the very types CAF checks; otherwise the stand-ins and the ``caf_hpc`` logger.

A steering script imports CAF's own names from here too, so that it runs unchanged with
basf2 and without it::

    from caf_hpc.basf2_compat import CAF, Calibration, SimpleRunByRun, register_module

These (``STEERING_NAMES``) are imported on first use only: the runner's processes import
this module and must not pay for CAF's framework (or ROOT, which basf2's imports).
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any


def _basf2_importable() -> bool:
    """Whether a basf2 release is set up: a ``basf2`` module or package, not a directory that happens to be called
    basf2 on the import path (Python would import that as an empty namespace package)."""
    spec = importlib.util.find_spec("basf2")
    return spec is not None and spec.origin not in (None, "namespace")


HAVE_BASF2 = _basf2_importable()

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
    from .extras.standins.runners import AlgorithmsRunner, RunnerError
    from .extras.standins.utils import ExpRun, IoV, IoV_Result

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

    log_error = _logger.error
    log_debug = _logger.debug
    log_warning = _logger.warning

_STANDINS = "caf_hpc.extras.standins"
#: Names a steering script imports: where basf2 has each, and where the stand-ins have it.
STEERING_NAMES = {
    "CAF": ("caf.framework", f"{_STANDINS}.caf"),
    "Calibration": ("caf.framework", f"{_STANDINS}.framework"),
    "Collection": ("caf.framework", f"{_STANDINS}.framework"),
    "Algorithm": ("caf.framework", f"{_STANDINS}.framework"),
    "LocalDatabase": ("caf.utils", f"{_STANDINS}.framework"),
    "CentralDatabase": ("caf.utils", f"{_STANDINS}.framework"),
    "SingleIOV": ("caf.strategies", f"{_STANDINS}.strategies"),
    "SimpleRunByRun": ("caf.strategies", f"{_STANDINS}.strategies"),
    "AlgResult": ("caf.utils", f"{_STANDINS}.utils"),
    "Local": ("caf.backends", f"{_STANDINS}.backends"),
    # for caf-hpc's collector backend (caf.backends imports ROOT: the runner never imports these)
    "Backend": ("caf.backends", f"{_STANDINS}.backends"),
    "Result": ("caf.backends", f"{_STANDINS}.backends"),
    "register_module": ("basf2", f"{_STANDINS}.collector"),
    "create_path": ("basf2", f"{_STANDINS}.collector"),
}


def __getattr__(name: str) -> Any:
    if name in STEERING_NAMES:
        real, standin = STEERING_NAMES[name]
        value = getattr(importlib.import_module(real if HAVE_BASF2 else standin), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HAVE_BASF2", "STEERING_NAMES", *STEERING_NAMES, "AlgorithmsRunner", "RunnerError", "ExpRun", "IoV",
           "IoV_Result", "log_info", "log_error", "log_debug", "log_warning"]
