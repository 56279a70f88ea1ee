"""The runner keeps CAF's contract: construction, attributes, results, order, final state."""
from __future__ import annotations

import pathlib

from scripted import EVERYWHERE, ok, scripted

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.standins.runners import AlgorithmsRunner
from caf_hpc.standins.utils import IoV, IoV_Result


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


def test_output_database_dir_stays_a_path(calibrate):
    outcome = calibrate([ok("Only")])
    assert outcome.final_state == "COMPLETED"
    runner = DaskAlgorithmsRunner(name="x")
    runner.output_database_dir = pathlib.Path("/tmp/somewhere")
    assert isinstance(runner.output_database_dir, pathlib.Path)


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


def test_a_runner_can_be_reused_for_the_next_iteration(calibrate, tmp_path):
    first = calibrate([ok("Again", 2)], iteration=0)
    second = calibrate([ok("Again", 2)], iteration=1)
    assert first.final_state == second.final_state == "COMPLETED"
    assert first.output_dir != second.output_dir
