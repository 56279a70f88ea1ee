"""CAF's ``CAF`` without basf2: orders the calibrations, starts each in its thread, submits their collector jobs.

``run()`` is CAF's main loop, every ``heartbeat`` (5 s): calibrations whose dependencies
completed are started (each ``Calibration.run`` in a daemon thread), the collector Jobs
they queued are submitted to ``calibration.backend.submit(job)`` from this one thread
(CAF funnels every submission through it), and ended threads are joined; the loop ends
when no calibration may still complete. The process works in ``output_dir`` meanwhile.

Not modelled: the ``caf_state.db`` checkpoints, so a second run over the same
``output_dir`` starts again from the beginning instead of from each calibration's
checkpoint; and reading runs from input files' metadata (``files_to_iovs`` must be given
for an IoV or ``ignored_runs`` to leave files out).
"""
from __future__ import annotations

import logging
import os
import time
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, NoReturn

from .backends import Backend, Local
from .framework import Calibration

B2 = logging.getLogger("caf")


def _fatal(message: str) -> NoReturn:
    """basf2's ``B2FATAL``: the message, and the program ends."""
    B2.critical(message)
    raise SystemExit(f"[FATAL] {message}")


class CAF:
    """Holds calibrations and runs them: CAF's ``CAF``, with its attributes and defaults."""

    default_calibration_config = {"max_iterations": 5, "ignored_runs": []}

    def __init__(self, calibration_defaults: dict | None = None) -> None:
        self.calibrations: dict = {}
        self.future_dependencies: dict = {}
        self.dependencies: dict = {}
        self.output_dir: Any = "calibration_results"
        self.order: Any = None
        self._backend: Any = None
        self.heartbeat: float = 5
        self.calibration_defaults = {**self.default_calibration_config, **(calibration_defaults or {})}

    def add_calibration(self, calibration: Calibration) -> None:
        if not calibration.is_valid():
            B2.warning("Tried to add incomplete/invalid calibration (%s) to the framwork.It was not added and will "
                       "not be part of the final process.", calibration.name)
        elif calibration.name in self.calibrations:
            B2.warning("Tried to add a calibration with the name %s twice.", calibration.name)
        else:
            self.calibrations[calibration.name] = calibration

    @property
    def backend(self) -> Any:
        return self._backend

    @backend.setter
    def backend(self, backend: Any) -> None:
        if isinstance(backend, Backend):
            self._backend = backend
        else:
            B2.error("Backend property must inherit from Backend class.")

    def _order_calibrations(self) -> list:
        """A valid order, and each calibration's dependencies made complete (implicit ones too) and put in it."""
        known = set(self.calibrations)
        for calibration in self.calibrations.values():
            for attribute in ("dependencies", "future_dependencies"):
                kept = []
                for dependency in getattr(calibration, attribute):
                    if dependency.name in known:
                        kept.append(dependency)
                    else:
                        B2.warning("The calibration %s is a required dependency but is not in the CAF. It has been "
                                   "removed as a dependency.", dependency.name)
                setattr(calibration, attribute, kept)
            self.dependencies[calibration.name] = [d.name for d in calibration.dependencies]
            self.future_dependencies[calibration.name] = [d.name for d in calibration.future_dependencies]
        try:
            order = list(TopologicalSorter(self.dependencies).static_order())
        except CycleError:
            return []
        for calibration in self.calibrations.values():
            every, todo = set(), [d.name for d in calibration.dependencies]
            while todo:
                name = todo.pop()
                if name not in every:
                    every.add(name)
                    todo.extend(self.dependencies[name])
            calibration.dependencies = [self.calibrations[name] for name in order if name in every]
        return order

    def _check_backend(self) -> None:
        if not isinstance(self._backend, Backend):
            self.backend = Local()

    def _prune_invalid_collections(self) -> None:
        B2.info("Checking for any invalid Collections in Calibrations.")
        for calibration in self.calibrations.values():
            for name, collection in list(calibration.collections.items()):
                if not collection.is_valid():
                    B2.warning("Removing invalid Collection '%s' from Calibration '%s'.", name, calibration.name)
                    del calibration.collections[name]

    def run(self, iov: Any = None) -> None:
        """Runs every calibration to its end, in its dependencies' order; prints the final states."""
        if not self.calibrations:
            _fatal("There were no Calibration objects to run. Maybe you tried to add invalid ones?")
        self.order = self._order_calibrations()
        if not self.order:
            _fatal("Couldn't order the calibrations properly. Could be a cyclic dependency.")
        self._check_backend()
        self._prune_invalid_collections()
        self.output_dir = self._make_output_dir()
        previous = os.getcwd()
        os.chdir(self.output_dir)
        try:
            for calibration in self.calibrations.values():
                calibration._apply_calibration_defaults(self.calibration_defaults)
                calibration.output_database_dir = Path(self.output_dir, calibration.name, "outputdb").as_posix()
                calibration.iov = iov
                if not calibration.backend:
                    calibration.backend = self.backend
                calibration.daemon = True  # as CAF's: they end with the program
            self._main_loop()
        finally:
            os.chdir(previous)
        B2.info("Printing summary of final CAF status.")
        print(self.summary())

    def _main_loop(self) -> None:
        keep_running = True
        while keep_running:
            keep_running = False
            remaining = []
            for calibration in self.calibrations.values():
                if calibration.fatal:
                    _fatal(calibration.fatal)
                if calibration.state in (Calibration.end_state, Calibration.fail_state):
                    if calibration.is_alive():
                        calibration.join()
                elif calibration.dependencies_met():
                    if not calibration.is_alive():
                        calibration.start()  # a second start (a thread that ended early) raises, as CAF's
                    remaining.append(calibration)
                elif not calibration.failed_dependencies():
                    remaining.append(calibration)
            if remaining:
                keep_running = True
                for calibration in remaining:  # one submitting thread: some backends want no parallel submission
                    for job in calibration.jobs_to_submit[:]:
                        calibration.backend.submit(job)
                        calibration.jobs_to_submit.remove(job)
            time.sleep(self.heartbeat)

    def _make_output_dir(self) -> str:
        path = Path(self.output_dir).resolve()
        if path.is_dir():
            B2.info("%s output directory already exists. (The stand-in keeps no checkpoints: it starts again.)",
                    path.as_posix())
        path.mkdir(parents=True, exist_ok=True)
        return path.as_posix()

    def summary(self) -> str:
        """The final table CAF prints: each calibration's state and iteration."""
        rows = [("name", "state", "iteration")] + [(c.name, c.state, str(c.iteration))
                                                     for c in self.calibrations.values()]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
        return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
