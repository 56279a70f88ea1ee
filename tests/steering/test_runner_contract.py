"""The runner keeps CAF's contract: construction, attributes, results, order, final state."""
from __future__ import annotations

import pathlib

import pytest

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.runners import AlgorithmsRunner
from caf_hpc.extras.standins.utils import IoV, IoV_Result
from caf_hpc.steering import clusters
from tests.helpers.scripted import EVERYWHERE, ok, scripted


def test_runner_is_a_caf_algorithms_runner_built_from_its_name():
    runner = DaskAlgorithmsRunner(name="cal")
    assert isinstance(runner, AlgorithmsRunner)
    assert (runner.name, runner.results, runner.final_state) == ("cal", {}, None)
    assert (runner.FAILED, runner.COMPLETED) == ("FAILED", "COMPLETED")


def test_results_keep_their_type_order_and_count(calibrate):
    outcome = calibrate([ok("First", 3), ok("Second", 2)])
    assert outcome.error is None and outcome.final_state == "COMPLETED"
    assert list(outcome.results) == ["First", "Second"]
    first = outcome.results["First"]
    assert first == [IoV_Result(IoV(1, i, 1, i), 0) for i in range(3)]
    assert all(type(r) is IoV_Result and type(r.iov) is IoV for r in first)
    assert first[2].iov.run_low == 2 and first[2].result == 0


def test_output_database_dir_stays_a_path_for_caf_and_the_strategy(tmp_path):
    runners = []

    class Kept(DaskAlgorithmsRunner):
        def __init__(self, name):
            super().__init__(name)
            runners.append(self)

    outcome = run_algorithms(Kept, "cal", [ok("Only", 1, ("report_state",))], [], tmp_path)
    assert outcome.final_state == "COMPLETED", outcome.error
    assert isinstance(runners[0].output_database_dir, pathlib.Path)
    assert "output_database_dir=PosixPath" in (outcome.output_dir / "Only_stdout").read_text()


def test_iterate_result_code_reaches_caf_for_its_iteration_decision(calibrate):
    outcome = calibrate([scripted("Iterating", ("results", 1, 1), ("final", "COMPLETED"))])
    assert outcome.results["Iterating"][0].result == 1
    assert outcome.wants_iteration


def test_later_strategy_reads_the_payload_an_earlier_one_committed(calibrate):
    outcome = calibrate([
        scripted("Producer", ("commit", "Constants", {"gain": 1.25}), ("results", 1), ("final", "COMPLETED")),
        scripted("Consumer", ("expect_payload", "Constants", {"gain": 1.25})),
    ])
    assert outcome.final_state == "COMPLETED", outcome.error
    assert outcome.results["Consumer"] == [IoV_Result(EVERYWHERE, 0)]
    database = (outcome.output_dir / "outputdb" / "database.txt").read_text()
    assert database.startswith("dbstore/Constants 1 0,0,-1,-1")


def test_next_strategy_starts_only_after_the_previous_one_ended(calibrate, tmp_path):
    trace = tmp_path / "trace"
    steps = lambda tag: [("record", str(trace), f"{tag} start"), ("sleep", 0.3),  # noqa: E731
                         ("record", str(trace), f"{tag} end")]
    outcome = calibrate([ok("A", 1, *steps("A")), ok("B", 1, *steps("B")), ok("C", 1, *steps("C"))])
    assert outcome.final_state == "COMPLETED"
    assert trace.read_text().split("\n")[:-1] == ["A start", "A end", "B start", "B end", "C start", "C end"]


def test_next_iteration_reuses_the_same_cluster(calibrate, tmp_path):
    first = calibrate([ok("Again", 2)], iteration=0)
    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    workers = set(client.scheduler_info()["workers"])
    second = calibrate([ok("Again", 2)], iteration=1)
    assert first.final_state == second.final_state == "COMPLETED"
    assert first.output_dir != second.output_dir
    assert clusters.client_for(DaskAlgorithmsRunner.settings()) is client
    assert set(client.scheduler_info()["workers"]) == workers


def test_a_second_runner_on_the_same_output_directory_is_refused(calibrate, tmp_path):
    from caf_hpc import RunnerError
    from tests.helpers.locks import hold_directory

    output_dir = tmp_path / "0" / "algorithm_output"  # where calibrate's driver puts iteration 0
    holder = hold_directory(output_dir, "calibration other", beside=True)
    try:
        outcome = calibrate([ok("Late")], root=tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert isinstance(outcome.error, RunnerError) and outcome.final_state == "FAILED"
    assert f"is in use by calibration other, process {holder.pid}" in str(outcome.error)
    assert outcome.results == {}


@pytest.mark.parametrize("algorithms", [None, []], ids=["unset", "empty"])
def test_run_without_algorithms_is_an_error_not_a_completed_run(tmp_path, algorithms):
    from caf_hpc import RunnerError

    runner = DaskAlgorithmsRunner(name="nothing")
    runner.algorithms, runner.output_dir = algorithms, tmp_path / "algorithm_output"
    runner.output_dir.mkdir()
    with pytest.raises(RunnerError, match="no algorithms to run"):
        runner.run(None, 0)
    assert runner.final_state == "FAILED"


def test_two_algorithms_with_one_name_are_refused_before_anything_runs(calibrate, tmp_path):
    from caf_hpc import RunnerError

    marker = tmp_path / "ran"
    outcome = calibrate([ok("Same", 2, ("record", str(marker), "first")), ok("Same", 3)])
    assert isinstance(outcome.error, RunnerError)
    assert "algorithm name(s) Same appear more than once" in str(outcome.error)
    assert outcome.results == {} and not marker.exists()


def test_one_runner_run_twice_reports_the_second_run_only(tmp_path):
    runner = DaskAlgorithmsRunner(name="again")
    runner.output_dir = tmp_path / "algorithm_output"
    runner.output_dir.mkdir()
    runner.output_database_dir = runner.output_dir / "outputdb"
    runner.algorithms = [ok("First", 2)]
    runner.run(None, 0)
    runner.algorithms = [ok("First", 3)]
    runner.run(None, 1)
    assert runner.final_state == "COMPLETED" and [len(r) for r in runner.results.values()] == [3]
