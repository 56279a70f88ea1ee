"""The stand-in of CAF's framework: whole calibrations run as CAF runs them, on the real local default.

Collector jobs go through ``DaskBackend`` (or CAF's default, ``Local``) running the demo's
collector over raw hit files; the algorithm step through ``DaskAlgorithmsRunner``. The
heartbeats are shortened as a steering script may (``caf.heartbeat``, ``cal.heartbeat``),
and CAF's hard-coded 5 s wait for submission through the stand-in's ``init_check``.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from caf_hpc import DaskAlgorithmsRunner, DaskBackend
from caf_hpc.extras.demo.collector import COLLECTOR, OUTPUT_PATTERNS
from caf_hpc.extras.demo.simulate import simulate
from caf_hpc.extras.standins.backends import Backend, Local
from caf_hpc.extras.standins.caf import CAF
from caf_hpc.extras.standins.calibration_algorithm import CalibrationAlgorithm
from caf_hpc.extras.standins.collector import register_module
from caf_hpc.extras.standins.framework import Calibration
from caf_hpc.extras.standins.machine import CalibrationMachine
from caf_hpc.extras.standins.strategies import SimpleRunByRun
from caf_hpc.extras.standins.utils import AlgResult, ExpRun
from tests.helpers.collectors import stand_in_release

FAST = 0.2


class CountEvents(CalibrationAlgorithm):
    """Saves the number of pedestal events and what the database chain already held; iterates ``iterate`` times."""

    def __init__(self, payload: str = "Counts", iterate: int = 0, read: str = "") -> None:
        super().__init__(prefix="DemoCollector")
        self.payload, self.iterate, self.read = payload, iterate, read

    @property
    def name(self) -> str:
        return self.payload + "Algorithm"

    def calibrate(self) -> AlgResult:
        first = self.getRunList()[0]
        earlier = self.getPayload(self.read or self.payload, first)
        self.saveCalibration({"events": len(self.getObjectPtr("pedestal_events")), "iteration": self.getIteration(),
                              "earlier": earlier}, self.payload)
        return AlgResult.iterate if self.getIteration() < self.iterate else AlgResult.ok


class Recording(Backend):
    """A backend that notes which thread submits each job, then lets ``DaskBackend`` run it."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = DaskBackend()
        self.threads: list = []

    def submit(self, job):
        self.threads.append(threading.current_thread().name)
        return self.inner.submit(job)


@pytest.fixture
def raw(tmp_path, monkeypatch):
    """Raw hit files of 4 runs, a stand-in basf2 release set up, and CAF's waits shortened."""
    stand_in_release(tmp_path, monkeypatch)
    monkeypatch.setattr(CalibrationMachine, "init_check", FAST)
    return [str(f) for f in simulate(tmp_path / "raw", seed=5, experiments=(1,), runs_per_experiment=4,
                                     output_format="raw", pedestal_events=20, signal_events=20)]


def calibration(name, files, *algorithms, collector=None, **kwargs) -> Calibration:
    cal = Calibration(name, collector=collector or register_module(COLLECTOR, output_format="json"),
                      algorithms=list(algorithms), input_files=files, output_patterns=OUTPUT_PATTERNS["json"],
                      **kwargs)
    cal.algorithms_runner = DaskAlgorithmsRunner
    cal.heartbeat = FAST
    return cal


def run(tmp_path, *calibrations, backend=None) -> CAF:
    caf = CAF()
    for cal in calibrations:
        caf.add_calibration(cal)
    caf.output_dir = tmp_path / "results"
    caf.heartbeat = FAST
    if backend is not None:
        caf.backend = backend
    caf.run()
    return caf


def payload(directory: Path, name: str, revision: int = 1) -> dict:
    return json.loads((directory / f"dbstore_{name}_rev_{revision}.json").read_text())


def test_a_calibration_runs_its_collector_jobs_then_its_algorithms_in_cafs_layout(tmp_path, raw):
    backend = Recording()
    cal = calibration("Cal", raw, CountEvents(), max_files_per_collector_job=2)
    caf = run(tmp_path, cal, backend=backend)
    assert cal.state == "completed" and cal.iteration == 0
    assert backend.threads == [threading.main_thread().name]  # one Job, submitted by CAF's main thread
    root = tmp_path / "results" / "Cal"
    sandbox = root / "0" / "collector_input" / "default"
    assert {p.name for p in sandbox.iterdir()} == {"collect.path", "collector_config.json", "collector_job.json"}
    job = json.loads((sandbox / "collector_job.json").read_text())
    assert job["name"] == "Cal_default_Iteration_0" and len(job["subjobs"]) == 2
    for subjob in ("0", "1"):
        assert (root / "0" / "collector_output" / "default" / subjob / "CollectorOutput.json").exists()
    outputdb = root / "0" / "algorithm_output" / "outputdb"
    assert payload(outputdb, "Counts")["events"] == 4 * 20
    assert (root / "outputdb" / "database.txt").read_text() == (outputdb / "database.txt").read_text()
    assert cal.results[0]["CountsAlgorithm"][0].result == AlgResult.ok
    assert caf.summary().splitlines()[-1].split() == ["Cal", "completed", "0"]


def test_iterations_and_dependencies_feed_each_database_chain(tmp_path, raw):
    first = calibration("First", raw, CountEvents(iterate=1))
    second = calibration("Second", raw, CountEvents("Later", read="Counts"))
    second.depends_on(first)
    run(tmp_path, second, first, backend=DaskBackend())
    assert first.state == second.state == "completed"
    assert first.iteration == 1 and second.iteration == 0  # First asked once to iterate (c_Iterate)
    root = tmp_path / "results"

    def chain(cal, iteration):
        config = root / cal / str(iteration) / "collector_input" / "default" / "collector_config.json"
        return json.loads(config.read_text())["database_chain"]

    assert chain("First", 0) == []
    previous = root / "First" / "0" / "algorithm_output" / "outputdb"
    assert chain("First", 1) == [["local", [str(previous / "database.txt"), str(previous)]]]
    assert chain("Second", 0) == [["local", [str(root / "First" / "outputdb" / "database.txt"),
                                             str(root / "First" / "outputdb")]]]
    again = payload(root / "First" / "1" / "algorithm_output" / "outputdb", "Counts")
    assert again["iteration"] == 1 and again["earlier"]["iteration"] == 0  # iteration 0's payload, from the chain
    later = payload(root / "Second" / "0" / "algorithm_output" / "outputdb", "Later")
    assert later["earlier"]["iteration"] == 1  # First's final payloads
    assert first.machine.timings[1]["algorithms"][1] <= second.machine.timings[0]["collector"][0]


def test_iterating_stops_at_max_iterations_as_cafs_count_does(tmp_path, raw):
    cal = calibration("Cal", raw, CountEvents(iterate=10))
    cal.max_iterations = 1
    run(tmp_path, cal, backend=DaskBackend())
    assert cal.state == "completed" and sorted(cal.results) == [0, 1]  # iteration < max_iterations: 0 and 1 run


def test_a_failed_collector_job_fails_its_calibration_and_its_dependents_never_start(tmp_path, raw, caplog):
    broken = calibration("Broken", raw, CountEvents(),
                         collector=register_module("caf_hpc.extras.standins.collector:count_entries", fail=True))
    after = calibration("After", raw, CountEvents())
    after.depends_on(broken)
    run(tmp_path, broken, after, backend=DaskBackend())
    assert broken.state == "failed" and after.state == "init" and not after.is_alive()
    assert not (tmp_path / "results" / "Broken" / "0" / "algorithm_output").exists()
    assert "this collector was asked to fail" in (tmp_path / "results" / "Broken" / "0" / "collector_output" /
                                                   "default" / "0" / "stderr").read_text()


def test_without_a_backend_caf_uses_its_local_one(tmp_path, raw):
    cal = calibration("Cal", raw, CountEvents(), max_files_per_collector_job=4)
    caf = run(tmp_path, cal)
    assert isinstance(caf.backend, Local) and cal.backend is caf.backend
    assert cal.state == "completed"
    caf.backend.join()


def test_run_by_run_strategies_are_set_per_algorithm_and_a_list_fails_as_in_caf(tmp_path, raw):
    cal = calibration("Cal", raw, CountEvents())
    with pytest.raises(TypeError, match="set algorithm.strategy on each of cal.algorithms"):
        cal.strategies = [SimpleRunByRun]
    cal.algorithms[0].strategy = SimpleRunByRun
    run(tmp_path, cal, backend=DaskBackend())
    assert [r.iov.run_low for r in cal.results[0]["CountsAlgorithm"]] == [1, 2, 3, 4]
    assert ExpRun(1, 4) in {ExpRun(r.iov.exp_low, r.iov.run_low) for r in cal.results[0]["CountsAlgorithm"]}


def test_without_a_basf2_setup_the_collector_job_cannot_be_made_and_caf_ends_with_its_fatal(tmp_path, raw,
                                                                                            monkeypatch):
    monkeypatch.delenv("BELLE2_TOOLS")
    cal = calibration("Cal", raw, CountEvents())
    with pytest.raises(SystemExit, match="No BELLE2_TOOLS found in environment"):
        run(tmp_path, cal, backend=DaskBackend())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread's end, as CAF's
def test_collector_output_missing_crashes_caf_as_cafs_own_machine_does(tmp_path, raw):
    """CAF's MachineError, then ``fail`` from collector_completed (no such transition): the thread ends, and CAF
    starts it again. The Dask backend fails such a job before; CAF's Local does not."""
    cal = calibration("Cal", raw, CountEvents(), collector=register_module(COLLECTOR, output_format="json"))
    cal.output_patterns = ["Nothing.root"]
    with pytest.raises(RuntimeError, match="threads can only be started once"):
        run(tmp_path, cal, backend=Local(max_processes=2))
    assert cal.state == "collector_completed"
