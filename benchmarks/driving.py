"""How a measure runs a calibration: through ``run_algorithms``, the steps CAF takes, with clocks around it.

The only addition is ``runner.results``: a dict whose lists note when each result was
appended. That is the moment a result is in ``runner.results`` for CAF, for caf-hpc's
runner and for the baselines alike, with no thread polling for it.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caf_hpc.extras.standins.driver import run_algorithms


class BenchmarkError(RuntimeError):
    """A calibration of the suite did not end as it must (then its figures would mean nothing)."""


class StampedList(list):
    """A list of results that notes ``time.time()`` as each one is appended."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list = []

    def append(self, value) -> None:
        super().append(value)
        self.stamps.append(time.time())

    def clear(self) -> None:
        super().clear()
        self.stamps.clear()


class StampedResults(dict):
    """``runner.results`` whose lists are ``StampedList``s (runners make them with ``setdefault``)."""

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = StampedList()
        return self[key]


def stamped(runner_class: Any) -> type:
    """``runner_class`` with ``results`` that note when each result arrived."""

    def __init__(self, name: str) -> None:
        runner_class.__init__(self, name=name)
        self.results = StampedResults()

    return type(runner_class.__name__, (runner_class,), {"__init__": __init__})


@dataclass
class Ran:
    """One calibration as a measure saw it."""

    called: float   # time.time() just before run() was called
    wall: float     # seconds until it returned
    results: dict   # algorithm name -> StampedList
    output_dir: Path


def calibrate(runner_class: type, algorithms: Sequence, root: Path, name: str = "bench",
              input_files: Sequence = ()) -> Ran:
    """Runs ``algorithms`` as one iteration of calibration ``name`` under ``root``; it must complete."""
    runner = stamped(runner_class)
    called, started = time.time(), time.perf_counter()
    outcome = run_algorithms(runner, name, algorithms, list(input_files), root)
    wall = time.perf_counter() - started
    if outcome.error is not None or outcome.final_state != "COMPLETED":
        raise BenchmarkError(f"calibration {name} under {root} ended {outcome.final_state}: {outcome.error}")
    return Ran(called, wall, outcome.results, outcome.output_dir)
