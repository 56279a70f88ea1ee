"""``caf.strategies``: how an algorithm is executed over the runs and what it reports.

A strategy speaks to its runner only through ``queue.put`` with CAF's two message
kinds: ``{"type": "result", "value": IoV_Result}`` (any number) and
``{"type": "final_state", "value": "COMPLETED" | "FAILED"}`` (once, last).
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from . import basf2_logging, cpp
from .conditions import conditions
from .utils import AlgResult, ExpRun, IoV, IoV_Result, iov_from_runs, runs_from_vector

B2 = logging.getLogger("caf")


class AlgorithmStrategy(ABC):
    required_attrs = ["database_chain", "dependent_databases", "output_dir",
                      "output_database_dir", "input_files", "ignored_runs"]
    required_params = ()
    allowed_granularities = ["run", "all"]
    FINISHED_RESULTS = "DONE"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    def __init__(self, algorithm: Any) -> None:  # a framework.Algorithm, which imports this module
        self.algorithm = algorithm
        self.input_files: list[str] = []
        self.output_dir = ""
        self.output_database_dir = ""
        self.database_chain: list = []
        self.dependent_databases: list = []
        self.ignored_runs: list = []
        self.results: list = []
        self.queue: Any = None  # what run() was given: anything with CAF's put()

    @abstractmethod
    def run(self, iov: IoV | None, iteration: int, queue: Any) -> None:
        ...

    def setup_from_dict(self, params: dict) -> None:
        for attribute_name, value in params.items():
            setattr(self, attribute_name, value)

    def is_valid(self) -> bool:
        return all(hasattr(self, name) for name in self.required_attrs)

    def send_result(self, result: IoV_Result) -> None:
        self.queue.put({"type": "result", "value": result})

    def send_final_state(self, state: str) -> None:
        self.queue.put({"type": "final_state", "value": state})

    # -- what basf2's AlgorithmMachine does before executing -----------------
    def setup_algorithm(self, iteration: int) -> None:
        """Changes process-wide state, as the real machine does: cwd, logging, conditions."""
        cpp.adopt(self.algorithm.algorithm)
        output_dir = Path(self.output_dir).resolve()
        basf2_logging.reset_log()
        basf2_logging.set_log_level(basf2_logging.LogLevel.INFO)
        basf2_logging.log_to_file(str(output_dir / f"{self.algorithm.name}_stdout"))
        os.chdir(output_dir)
        conditions.reset()
        for database in self.database_chain:
            if database.db_type == "local":
                conditions.prepend_testing_payloads(database.filepath)
            else:
                conditions.prepend_globaltag(database.global_tag)
        for database_txt, _payload_dir in self.dependent_databases:
            conditions.prepend_testing_payloads(database_txt)
        Path(self.output_database_dir).mkdir(parents=True, exist_ok=True)  # CAF creates it here too
        output_db = Path(self.output_database_dir, "database.txt").resolve()
        conditions.prepend_testing_payloads(output_db)
        conditions.expert_settings(save_payloads=output_db)
        self.algorithm.data_input(self.input_files)
        if self.algorithm.pre_algorithm:
            self.algorithm.pre_algorithm(self.algorithm.algorithm, iteration)

    def runs_to_execute(self, iov: IoV | None) -> list[ExpRun]:
        ignored = set(self.ignored_runs)
        runs = [r for r in runs_from_vector(self.algorithm.algorithm.getRunListFromAllData()) if r not in ignored]
        return [r for r in runs if iov is None or iov.contains(r)]


class SingleIOV(AlgorithmStrategy):
    """Executes the algorithm once over all runs and commits one payload set for the IoV."""

    usable_params: dict = {}

    def run(self, iov: IoV | None, iteration: int, queue: Any) -> None:
        self.queue = queue
        self.setup_algorithm(iteration)
        runs = self.runs_to_execute(iov)
        apply_iov = iov or (iov_from_runs(runs) if runs else IoV())
        B2.info("Executing %s over %d runs, IoV %s, iteration %d",
                self.algorithm.name, len(runs), tuple(apply_iov), iteration)
        code = self.algorithm.algorithm.execute(runs, iteration, apply_iov)
        self.send_result(IoV_Result(apply_iov, code))
        if code in (AlgResult.ok, AlgResult.iterate):
            self.algorithm.algorithm.commit()
            self.send_final_state(self.COMPLETED)
        else:
            B2.error("%s returned result code %s", self.algorithm.name, code)
            self.send_final_state(self.FAILED)


class SimpleRunByRun(AlgorithmStrategy):
    """Executes the algorithm run by run, one result and one payload set per run.

    A run without enough data is reported and skipped; a failing run fails the strategy.
    """

    allowed_granularities = ["run"]

    def run(self, iov: IoV | None, iteration: int, queue: Any) -> None:
        self.queue = queue
        self.setup_algorithm(iteration)
        failed = False
        for exprun in self.runs_to_execute(iov):
            code = self.algorithm.algorithm.execute([exprun], iteration, exprun.make_iov())
            self.send_result(IoV_Result(exprun.make_iov(), code))
            if code in (AlgResult.ok, AlgResult.iterate):
                self.algorithm.algorithm.commit()
            elif code == AlgResult.failure:
                B2.error("%s failed for run %s", self.algorithm.name, tuple(exprun))
                failed = True
                break
        self.send_final_state(self.FAILED if failed else self.COMPLETED)
