"""CAF's ``CalibrationMachine`` without basf2: the states of one calibration and what each step does.

    init --submit_collector--> running_collector --> collector_completed | collector_failed
    collector_completed --run_algorithms--> running_algorithms --> algorithms_completed | algorithms_failed
    algorithms_completed --> init (iterate: a result asked for it, below max_iterations) | completed
    collector_failed, algorithms_failed --fail_fully--> failed

Each step is CAF's, reusing the stand-ins that already do it as CAF does:
``collection.collector_job`` builds a collection's Job, which goes onto
``calibration.jobs_to_submit`` for CAF's main thread to submit;
``collection.wait_until_submitted`` and ``collection.follow`` are CAF's waits and polling
(``heartbeat``, ``collector_full_update_interval``); ``driver.run_algorithms`` builds the
calibration's ``algorithms_runner`` and runs it as CAF does. The layout is CAF's:
``<output_dir>/<calibration>/<iteration>/collector_input|collector_output|algorithm_output``
and, once completed, ``<output_dir>/<calibration>/outputdb``.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, NoReturn

from . import collection as collection_step
from .collector import create_path
from .driver import IterationOutcome, run_algorithms

B2 = logging.getLogger("caf")


class MachineError(Exception):
    """CAF's ``MachineError``: the machine cannot go on, e.g. a collector (sub)job left no output."""


class CalibrationMachine:
    """One calibration's state and steps; ``Calibration.run`` (its thread) calls them in CAF's order."""

    collector_input_dir = "collector_input"
    collector_output_dir = "collector_output"
    algorithm_output_dir = "algorithm_output"
    #: CAF waits this long between its checks that the main thread submitted the collector jobs (hard-coded 5 s).
    init_check = collection_step.INIT_CHECK

    def __init__(self, calibration: Any, iov_to_calibrate: Any = None, iteration: int = 0) -> None:
        self.calibration = calibration
        calibration.machine = self
        self.iteration = iteration
        self.iov_to_calibrate = iov_to_calibrate
        self.root_dir = Path(os.getcwd(), calibration.name)
        self.state = calibration.state
        self.collector_jobs: dict = {}
        self.collector_outcomes: dict = {}   # iteration -> collection.CollectorOutcome
        self.outcomes: list[IterationOutcome] = []  # the algorithm step of each iteration
        self.timings: dict = {}              # iteration -> {"collector": (start, end), "algorithms": (start, end)}
        self._queued = 0.0

    def _move(self, state: str) -> None:
        self.state = state
        self.calibration.state = state
        B2.info("Calibration Machine %s moved to state %s.", self.calibration.name, state)

    def _time(self, step: str, end: bool = False) -> None:
        steps = self.timings.setdefault(self.iteration, {})
        steps[step] = (steps[step][0], time.time()) if end else (time.time(), None)

    # ------------------------------------------------------------------ collector step
    def dependent_databases(self) -> list:
        """(database.txt, payload dir) of each dependency's final outputdb, then of the previous iteration's."""
        databases = []
        for dependency in self.calibration.dependencies:
            database_dir = Path(os.getcwd(), dependency.name, "outputdb")
            B2.info("Adding local database from %s for use by %s.", dependency.name, self.calibration.name)
            databases.append((str(database_dir / "database.txt"), str(database_dir)))
        if self.iteration > 0:
            database_dir = self.root_dir / str(self.iteration - 1) / self.algorithm_output_dir / "outputdb"
            databases.append((str(database_dir / "database.txt"), str(database_dir)))
            B2.info("Adding local database from previous iteration of %s.", self.calibration.name)
        return databases

    def submit_collector(self) -> None:
        """init -> running_collector: the collections' Jobs, queued for CAF's main thread, submitted."""
        if not self.calibration.dependencies_met():
            raise RuntimeError(f"Transition 'submit_collector' of {self.calibration.name}: dependencies not completed")
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self._time("collector")
        self.collector_jobs = {name: self._collector_job(name, collection)
                               for name, collection in self.calibration.collections.items()}
        self.calibration.jobs_to_submit.extend(self.collector_jobs.values())
        self._queued = time.monotonic()
        collection_step.wait_until_submitted(list(self.collector_jobs.values()), self.init_check)
        self._move("running_collector")

    def _collector_job(self, name: str, collection: Any) -> Any:
        input_files = self._input_files(name, collection)
        if not input_files:
            raise MachineError(f"No valid input files for Calibration '{self.calibration.name}'  and Collection "
                               f"'{name}'.")
        return collection_step.collector_job(
            self.calibration.name, name, self.iteration, os.getcwd(), input_files,
            create_path().add_module(collection.collector), database_chain=collection.database_chain,
            dependent_databases=self.dependent_databases(),
            max_files_per_collector_job=collection.max_files_per_collector_job,
            max_collector_jobs=collection.max_collector_jobs, backend_args=collection.backend_args,
            pre_collector_path=collection.pre_collector_path, output_patterns=collection.output_patterns,
            path_name=f"{collection.collector.name()}.path")

    def _input_files(self, name: str, collection: Any) -> set:
        """The collection's files, less those within the requested IoV's complement or only of ignored runs.

        CAF reads each file's runs from its metadata (basf2's ``get_iov_from_file``); here only a
        ``files_to_iovs`` the script filled can say which runs a file holds.
        """
        files = set(collection.input_files)
        if not (self.iov_to_calibrate or self.calibration.ignored_runs):
            return files
        if not collection.files_to_iovs:
            B2.warning("Collection '%s' of %s has no files_to_iovs: no file is left out for the IoV or "
                       "ignored_runs", name, self.calibration.name)
            return files
        if self.iov_to_calibrate:
            files = {f for f in files if f in collection.files_to_iovs
                     and _overlaps(collection.files_to_iovs[f], self.iov_to_calibrate)}
        for exprun in self.calibration.ignored_runs or ():
            files -= {f for f in files if collection.files_to_iovs.get(f) == exprun.make_iov()}
        return files

    def poll_collector(self) -> None:
        """running_collector -> collector_completed | collector_failed, polled as CAF's ``_poll_collector``."""
        jobs = list(self.collector_jobs.values())
        outcome = collection_step.follow(
            jobs, heartbeat=self.calibration.heartbeat,
            full_update_interval=self.calibration.collector_full_update_interval, last_update=self._queued,
            label=f" in Calibration {self.calibration.name}")
        self.collector_outcomes[self.iteration] = outcome
        self._time("collector", end=True)
        self._move("collector_completed" if outcome.state == "completed" else "collector_failed")

    # ------------------------------------------------------------------ algorithm step
    def run_algorithms(self) -> None:
        """collector_completed -> running_algorithms -> algorithms_completed -> init | completed, or failed."""
        outcome = self.collector_outcomes.get(self.iteration)
        if outcome is None or outcome.missing:
            missing = outcome.missing[0] if outcome is not None else "this iteration"
            raise MachineError(f"No output files from Collector {missing}")
        self._move("running_algorithms")
        self._time("algorithms")
        result = run_algorithms(
            self.calibration.algorithms_runner, self.calibration.name, self.calibration.algorithms, outcome.outputs,
            self.root_dir, iteration=self.iteration, iov=self.iov_to_calibrate,
            database_chain=self.calibration.database_chain, dependent_databases=self.dependent_databases(),
            ignored_runs=self.calibration.ignored_runs or [])
        self._time("algorithms", end=True)
        self.outcomes.append(result)
        self.calibration.results[self.iteration] = result.results
        if result.error is not None:
            print(result.error)  # CAF prints it and forces the failed state
        if result.failed:
            self._move("algorithms_failed")
            return
        self._move("algorithms_completed")
        if result.wants_iteration and self.iteration < self.calibration.max_iterations:
            self._move("init")
            self.iteration += 1
            self.calibration.iteration = self.iteration
            return
        if result.wants_iteration:
            B2.info("Reached maximum number of iterations (%s), will complete now.", self.calibration.max_iterations)
        self._prepare_final_db()
        self._move("completed")

    def _prepare_final_db(self) -> None:
        """The last iteration's outputdb, copied to ``<calibration>/outputdb`` where dependent calibrations read it."""
        final = self.root_dir / "outputdb"
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(self.root_dir / str(self.iteration) / self.algorithm_output_dir / "outputdb", final)

    # ------------------------------------------------------------------ failing
    def fail_fully(self) -> None:
        self._move("failed")

    def fail(self) -> NoReturn:
        """CAF's ``fail`` trigger, which has no transition out of ``collector_completed``: its thread ends here."""
        raise AttributeError(f"fail does not exist in transitions for state {self.state}.")


def _overlaps(iov: Any, other: Any) -> bool:
    """Whether two IoVs share a run (-1 as the high end: open)."""
    def high(i: Any) -> tuple:
        return (float("inf"), 0) if i.exp_high == -1 else (i.exp_high, float("inf") if i.run_high == -1 else i.run_high)

    return (iov.exp_low, iov.run_low) <= high(other) and (other.exp_low, other.run_low) <= high(iov)


__all__ = ["CalibrationMachine", "MachineError"]
