"""A Python analogue of basf2's C++ ``CalibrationAlgorithm``.

Collector output is stored as JSON: ``{"objects": {<name>: {"<exp>,<run>": [rows...]}}}``,
one file per collector job; ``getObjectPtr(name)`` returns the rows of the runs being
executed, merged over all input files, as the C++ class merges histograms and trees.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .conditions import conditions
from .utils import AlgResult, ExpRun, IoV, iov_from_runs


def write_collector_output(path: str | Path, objects: dict[str, dict[ExpRun, list]]) -> Path:
    """Writes collector output for ``objects``: {name: {ExpRun: rows}}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = {name: {f"{er.exp},{er.run}": rows for er, rows in per_run.items()}
               for name, per_run in objects.items()}
    path.write_text(json.dumps({"objects": encoded}))
    return path


class CalibrationAlgorithm(ABC):
    """Subclasses implement ``calibrate()`` and return an ``AlgResult`` code."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._input_files: list[str] = []
        self._runs: list[ExpRun] = []
        self._iteration = 0
        self._iov: IoV | None = None
        self._pending: list[tuple[str, Any, IoV]] = []
        self._cache: dict[str, dict] = {}

    @property
    def name(self) -> str:
        return type(self).__name__

    # -- input ---------------------------------------------------------------
    def setInputFileNames(self, files: Iterable[str]) -> None:
        self._input_files = [str(f) for f in files]
        self._cache.clear()

    def getInputFileNames(self) -> list[str]:
        return list(self._input_files)

    def _objects(self, path: str) -> dict:
        if path not in self._cache:
            self._cache[path] = json.loads(Path(path).read_text())["objects"]
        return self._cache[path]

    def getRunListFromAllData(self) -> list[ExpRun]:
        runs: set[ExpRun] = set()
        for path in self._input_files:
            for per_run in self._objects(path).values():
                runs.update(ExpRun(*map(int, key.split(","))) for key in per_run)
        return sorted(runs)

    def getObjectPtr(self, name: str) -> list:
        """The rows of ``name`` for the runs of the current execution."""
        wanted = {f"{er.exp},{er.run}" for er in self._runs}
        rows: list = []
        for path in self._input_files:
            per_run = self._objects(path).get(name, {})
            for key in sorted(wanted & per_run.keys(), key=lambda k: tuple(map(int, k.split(",")))):
                rows.extend(per_run[key])
        return rows

    # -- execution -----------------------------------------------------------
    def getRunList(self) -> list[ExpRun]:
        return list(self._runs)

    def getIteration(self) -> int:
        return self._iteration

    def getIovFromAllData(self) -> IoV:
        return iov_from_runs(self.getRunListFromAllData())

    def execute(self, runs: Iterable, iteration: int = 0, iov: IoV | None = None) -> int:
        self._runs = sorted(ExpRun(*r) for r in runs)
        self._iteration = iteration
        self._iov = iov or (iov_from_runs(self._runs) if self._runs else None)
        self._pending = []
        if not self._runs:
            return int(AlgResult.not_enough_data)
        return int(self.calibrate())

    @abstractmethod
    def calibrate(self) -> AlgResult:
        ...

    # -- payloads ------------------------------------------------------------
    def saveCalibration(self, data: Any, name: str, iov: IoV | None = None) -> None:
        """Keeps ``data`` for ``commit``, valid for ``iov``, by default for the runs of the execution.

        Outside an execution there is no default: refused here, where the caller is, rather than
        at ``commit`` with the payload's file written and no line in ``database.txt`` for it.
        """
        iov = iov or self._iov
        if iov is None:
            raise ValueError(f"saveCalibration(data, {name!r}) outside an execution has no runs to take an IoV from; "
                             "pass iov=IoV(exp_low, run_low, exp_high, run_high)")
        self._pending.append((name, data, iov))

    def getPayload(self, name: str, exprun: ExpRun | None = None) -> Any | None:
        """Reads a payload through the conditions chain (e.g. one an earlier algorithm committed)."""
        if exprun is None:
            if not self._runs:
                raise ValueError("getPayload() without a run needs an execution in progress; pass exprun")
            exprun = self._runs[0]
        return conditions.get_payload(name, exprun.exp, exprun.run)

    def commit(self) -> list[tuple[str, int]]:
        """Writes the payloads saved by the last execution to the output database."""
        written = [(name, conditions.save(name, data, iov)) for name, data, iov in self._pending]
        self._pending = []
        return written
