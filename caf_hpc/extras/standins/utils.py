"""IoV, IoV_Result and ExpRun as ``caf.utils`` defines them (namedtuples, so they pickle)."""
from __future__ import annotations

from collections import namedtuple
from enum import IntEnum
from typing import Iterable


class AlgResult(IntEnum):
    """The result codes of a CalibrationAlgorithm execution (``CalibrationAlgorithm::EResult``)."""

    ok = 0
    iterate = 1
    not_enough_data = 2
    failure = 3


class IoV(namedtuple("IoV_Base", ["exp_low", "run_low", "exp_high", "run_high"])):
    """An interval of validity; -1 for the high end means 'open ended'."""

    __slots__ = ()

    def __new__(cls, exp_low: int = -1, run_low: int = -1, exp_high: int = -1, run_high: int = -1):
        return super().__new__(cls, exp_low, run_low, exp_high, run_high)

    def contains(self, exprun: "ExpRun") -> bool:
        lo = (self.exp_low, self.run_low) <= (exprun.exp, exprun.run)
        if self.exp_high == -1:
            return lo
        if self.run_high == -1:
            return lo and exprun.exp <= self.exp_high
        return lo and (exprun.exp, exprun.run) <= (self.exp_high, self.run_high)


IoV_Result = namedtuple("IoV_Result", ["iov", "result"])


class ExpRun(namedtuple("ExpRun_Base", ["exp", "run"])):
    """An (experiment, run) pair."""

    __slots__ = ()

    def make_iov(self) -> IoV:
        return IoV(self.exp, self.run, self.exp, self.run)


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
