"""The one place that decides between real basf2/CAF and the package's stand-ins.

Importing this never needs basf2: when ``basf2`` imports, CAF's own base classes,
namedtuples and ``B2INFO``/``B2ERROR``/``B2DEBUG`` are used, so results and errors are
the very types CAF checks; otherwise the stand-ins and the ``caf_hpc`` logger.
"""
from __future__ import annotations

import importlib.util
import logging

HAVE_BASF2 = importlib.util.find_spec("basf2") is not None

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
    log_info = _logger.info
    log_error = _logger.error
    log_debug = _logger.debug
    log_warning = _logger.warning

__all__ = ["HAVE_BASF2", "AlgorithmsRunner", "RunnerError", "ExpRun", "IoV", "IoV_Result",
           "log_info", "log_error", "log_debug", "log_warning"]
