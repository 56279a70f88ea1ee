"""Drives an algorithms runner exactly as CAF's ``CalibrationMachine`` does.

Used by the demo and the tests when basf2 is absent, so that the runner is exercised
through the same sequence of attribute assignments and calls as inside CAF.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .utils import AlgResult, IoV


@dataclass
class IterationOutcome:
    iteration: int
    results: dict
    final_state: str | None
    error: BaseException | None = None
    output_dir: Path = field(default_factory=Path)

    @property
    def failed(self) -> bool:
        return self.error is not None or self.final_state == "FAILED"

    @property
    def wants_iteration(self) -> bool:
        return any(r.result == AlgResult.iterate for rs in self.results.values() for r in rs)


def run_algorithms(runner_class: type, name: str, algorithms: Sequence, input_files: Sequence,
                   root_dir: str | Path, iteration: int = 0, iov: IoV | None = None, database_chain: Sequence = (),
                   dependent_databases: Sequence = (), ignored_runs: Sequence = ()) -> IterationOutcome:
    """One iteration of CAF's algorithm step: build the runner, set its attributes, run it.

    Like CAF, an exception from ``run()`` marks the iteration failed instead of escaping.
    """
    output_dir = Path(root_dir, str(iteration), "algorithm_output").resolve()
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    runner = runner_class(name=name)
    runner.algorithms = list(algorithms)
    runner.output_database_dir = output_dir / "outputdb"
    runner.output_dir = output_dir
    runner.input_files = [str(Path(f).resolve()) for f in input_files]
    runner.database_chain = list(database_chain)
    runner.dependent_databases = list(dependent_databases)
    runner.ignored_runs = list(ignored_runs)
    error = None
    try:
        runner.run(iov, iteration)
    except Exception as err:  # CAF prints the error and marks the algorithms failed
        error = err
    return IterationOutcome(iteration, runner.results, runner.final_state, error, output_dir)


def run_calibration(runner_class: type, name: str, algorithms: Sequence, input_files: Sequence,
                    root_dir: str | Path, max_iterations: int = 3, **kwargs: Any) -> list[IterationOutcome]:
    """Iterates while any result asks for it (c_Iterate), feeding iteration i-1's database to i."""
    outcomes: list[IterationOutcome] = []
    dependent = list(kwargs.pop("dependent_databases", ()))
    for iteration in range(max_iterations):
        extra = []
        if outcomes:
            previous_db = outcomes[-1].output_dir / "outputdb"
            extra = [(str(previous_db / "database.txt"), str(previous_db))]
        outcome = run_algorithms(runner_class, name, algorithms, input_files, root_dir,
                                 iteration=iteration, dependent_databases=dependent + extra, **kwargs)
        outcomes.append(outcome)
        if outcome.failed or not outcome.wants_iteration:
            break
    return outcomes
