"""The ``caf.runners`` base class and error, as CAF defines them.

They are the package's own (``caf_hpc.caf_types``), which the runner derives from where
basf2 is missing; the stand-ins name them here, where CAF has them.
"""
from __future__ import annotations

from ...caf_types import AlgorithmsRunner, Runner, RunnerError

__all__ = ["AlgorithmsRunner", "Runner", "RunnerError"]
