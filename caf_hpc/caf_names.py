"""Where CAF's names live: in a basf2 release, and in caf-hpc's stand-ins where basf2 is missing.

Names only, nothing imported: this is the one table of the package (outside ``extras/``)
that names modules of ``caf_hpc.extras``, and it names them only for code that asks for
them by name: a steering script that imports CAF's names from ``caf_hpc.basf2_compat``
(``STEERING_NAMES``), the worker's fork server that imports a strategy's modules once
(``STRATEGY_MODULES``), and a strategy's process that makes basf2's logging append to its
log (``LOGGING_MODULES``). The runner's own code never imports the stand-ins; what it needs
of CAF when basf2 is missing is in ``caf_hpc.caf_types`` (``tests/test_imports.py``).
Reading this module is cheap (no basf2, no ROOT): the fork server and a strategy's process
import it.
"""
from __future__ import annotations

import importlib.util

STANDINS = "caf_hpc.extras.standins"

#: Names a steering script imports: where basf2 has each, and where the stand-ins have it.
STEERING_NAMES = {
    "CAF": ("caf.framework", f"{STANDINS}.caf"),
    "Calibration": ("caf.framework", f"{STANDINS}.framework"),
    "Collection": ("caf.framework", f"{STANDINS}.framework"),
    "Algorithm": ("caf.framework", f"{STANDINS}.framework"),
    "LocalDatabase": ("caf.utils", f"{STANDINS}.framework"),
    "CentralDatabase": ("caf.utils", f"{STANDINS}.framework"),
    "SingleIOV": ("caf.strategies", f"{STANDINS}.strategies"),
    "SimpleRunByRun": ("caf.strategies", f"{STANDINS}.strategies"),
    "AlgResult": ("caf.utils", f"{STANDINS}.utils"),
    "Local": ("caf.backends", f"{STANDINS}.backends"),
    # for caf-hpc's collector backend (caf.backends imports ROOT: the runner never imports these)
    "Backend": ("caf.backends", "caf_hpc.caf_types"),
    "Result": ("caf.backends", "caf_hpc.caf_types"),
    "register_module": ("basf2", f"{STANDINS}.collector"),
    "create_path": ("basf2", f"{STANDINS}.collector"),
}

#: The stand-in modules a strategy's process uses where basf2 is missing (its strategy, algorithm and
#: their base classes): the worker's fork server imports them once, so that no strategy pays for them.
STRATEGY_MODULES = (f"{STANDINS}.strategies", f"{STANDINS}.framework", f"{STANDINS}.calibration_algorithm")

#: Where ``log_to_file`` lives: basf2's, and the stand-ins' (a strategy's process makes whichever is loaded
#: append to the algorithm's log, ``caf_hpc.child.process``).
LOGGING_MODULES = ("basf2", f"{STANDINS}.basf2_logging")


def basf2_importable() -> bool:
    """Whether a basf2 release is set up: a ``basf2`` module or package, not a directory that happens to be called
    basf2 on the import path (Python would import that as an empty namespace package)."""
    spec = importlib.util.find_spec("basf2")
    return spec is not None and spec.origin not in (None, "namespace")
