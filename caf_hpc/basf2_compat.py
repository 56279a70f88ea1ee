"""The one place that decides between real basf2/CAF and the package's stand-ins.

Importing this never needs basf2: when ``basf2`` imports, CAF's own base classes,
namedtuples and ``B2INFO``/``B2ERROR``/``B2DEBUG`` are used, so results and errors are
the very types CAF checks; otherwise the stand-ins and the ``caf_hpc`` logger.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

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

__all__ = ["HAVE_BASF2", "AlgorithmsRunner", "RunnerError", "Backend", "Result", "ExpRun", "IoV", "IoV_Result",
           "log_info", "log_error", "log_debug", "log_warning"]


def __getattr__(name: str) -> Any:
    """CAF's ``Backend`` and ``Result`` (``caf.backends``), or the stand-ins', imported on first use only:
    ``caf.backends`` imports ROOT, which the algorithms runner and a strategy's process do not need."""
    if name in ("Backend", "Result"):
        if HAVE_BASF2:  # pragma: no cover - needs a basf2 release
            import caf.backends as backends
        else:
            from .extras.standins import backends  # type: ignore[no-redef]
        return getattr(backends, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

