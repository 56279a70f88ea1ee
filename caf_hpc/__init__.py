"""caf-hpc: run the Belle II calibration framework's algorithm step on Dask clusters.

In a CAF steering script::

    from caf_hpc import DaskAlgorithmsRunner, runner_for
    cal.algorithms_runner = DaskAlgorithmsRunner                    # local Dask cluster
    cal.algorithms_runner = runner_for(address="tcp://host:8786")  # a running scheduler
    cal.algorithms_runner = runner_for("site-name")                 # a site config
    cal.backend = backend_for("site-name")                          # its collector jobs on the same cluster

Names are imported lazily: the process that runs a strategy imports parts of this
package and must not pay for importing Dask.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["DaskAlgorithmsRunner", "runner_for", "DaskBackend", "backend_for", "RunnerError", "ShippingError",
           "SettingsError"]

_LAZY = {
    "DaskAlgorithmsRunner": "caf_hpc.steering.runner",
    "runner_for": "caf_hpc.steering.binding",
    "DaskBackend": "caf_hpc.steering.backend",
    "backend_for": "caf_hpc.steering.backend",
    "RunnerError": "caf_hpc.basf2_compat",
    "ShippingError": "caf_hpc.steering.shipping",
    "SettingsError": "caf_hpc.steering.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'caf_hpc' has no attribute {name!r}")
