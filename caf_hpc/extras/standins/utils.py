"""``caf.utils`` as CAF defines it: AlgResult, IoV, IoV_Result and ExpRun (namedtuples, so they pickle).

IoV, IoV_Result and ExpRun are the package's own (``caf_hpc.caf_types``), which the runner uses where
basf2 is missing; the stand-ins name them here, where CAF has them.
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from ...caf_types import ExpRun, IoV, IoV_Result

__all__ = ["AlgResult", "ExpRun", "IoV", "IoV_Result", "iov_from_runs", "runs_from_vector"]


class AlgResult(IntEnum):
    """The result codes of a CalibrationAlgorithm execution (``CalibrationAlgorithm::EResult``)."""

    ok = 0
    iterate = 1
    not_enough_data = 2
    failure = 3


def iov_from_runs(runs: Iterable[ExpRun]) -> IoV:
    """The smallest IoV covering ``runs`` (as ``caf.utils.iov_from_runs``)."""
    ordered = sorted(runs)
    if not ordered:
        raise ValueError("iov_from_runs() needs at least one run")
    return IoV(ordered[0].exp, ordered[0].run, ordered[-1].exp, ordered[-1].run)


def runs_from_vector(exp_run_vector: Iterable) -> list[ExpRun]:
    """``ExpRun`` tuples from what an algorithm's ``getRunListFromAllData()`` returns (for a C++
    algorithm a ``std::vector`` of (exp, run) pairs), as ``caf.utils.runs_from_vector``."""
    return [ExpRun(int(exp), int(run)) for exp, run in exp_run_vector]
