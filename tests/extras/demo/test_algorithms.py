"""The demo calibration's physics, run in-process through the stand-in strategies.

Each strategy runs in a forked child, as CAF's reference runner does, because it
chdirs, replaces the root logging handlers and resets the conditions configuration.
The real (Dask) runner is tested elsewhere; here a list-backed queue records messages.
"""
from __future__ import annotations

import multiprocessing
import pickle
import traceback
from pathlib import Path

import pytest

from caf_hpc.extras.demo.algorithms import ALGORITHM_NAMES, check_against_truth, make_algorithms
from caf_hpc.extras.demo.simulate import TRUTH_FILENAME, simulate
from caf_hpc.extras.standins.strategies import SimpleRunByRun, SingleIOV
from caf_hpc.extras.standins.utils import IoV, IoV_Result

_CTX = (multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods()
        else multiprocessing.get_context("spawn"))


class ListQueue:
    """Records what a strategy ``put``s, in order."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def put(self, message: dict) -> None:
        self.messages.append(message)


def _strategy_child(conn, algorithm, params: dict) -> None:
    queue = ListQueue()
    try:
        strategy = algorithm.strategy(algorithm)
        strategy.setup_from_dict(params)
        strategy.run(None, 0, queue)
        conn.send(("ok", queue.messages))
    except BaseException:  # report, never hang the parent
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_strategy(algorithm, input_files, output_dir: Path) -> list[dict]:
    """Runs ``algorithm``'s strategy in a child process; returns the messages it put."""
    output_dir.mkdir(parents=True, exist_ok=True)
    params = {"database_chain": [], "dependent_databases": [], "ignored_runs": [],
              "output_dir": output_dir.resolve(), "output_database_dir": (output_dir / "outputdb").resolve(),
              "input_files": [str(Path(f).resolve()) for f in input_files]}
    receiver, sender = _CTX.Pipe(duplex=False)
    child = _CTX.Process(target=_strategy_child, args=(sender, algorithm, params))
    child.start()
    sender.close()
    try:
        assert receiver.poll(60), f"{algorithm.name} sent nothing within 60 s"
        status, payload = receiver.recv()
    finally:
        child.join(10)
    assert status == "ok", payload
    assert child.exitcode == 0
    return payload


def run_chain(algorithms, input_files, output_dir: Path) -> dict[str, list[dict]]:
    """Runs strategies in order and stops at the first FAILED, like CAF's runner."""
    messages = {}
    for algorithm in algorithms:
        messages[algorithm.name] = run_strategy(algorithm, input_files, output_dir)
        if messages[algorithm.name][-1]["value"] == "FAILED":
            break
    return messages


def results(messages: list[dict]) -> list[IoV_Result]:
    assert all(m["type"] in ("result", "final_state") for m in messages)
    assert [m["type"] for m in messages].count("final_state") == 1 and messages[-1]["type"] == "final_state"
    return [m["value"] for m in messages if m["type"] == "result"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo_data")
    return directory, simulate(directory, seed=7)


@pytest.fixture(scope="module")
def calibrated(data, tmp_path_factory):
    """The whole chain run once into one output database."""
    directory, files = data
    output_dir = tmp_path_factory.mktemp("demo_calibrated")
    return output_dir, run_chain(make_algorithms(), files, output_dir)


def test_simulation_writes_several_files_and_truth(data):
    directory, files = data
    assert len(files) == 8 and all(f.exists() for f in files)
    assert (directory / TRUTH_FILENAME).exists()
    assert sum(f.stat().st_size for f in files) < 3_000_000


def test_simulation_is_reproducible(tmp_path):
    first = simulate(tmp_path / "a", seed=11, runs_per_experiment=4, runs_per_file=2)
    again = simulate(tmp_path / "b", seed=11, runs_per_experiment=4, runs_per_file=2)
    other = simulate(tmp_path / "c", seed=12, runs_per_experiment=4, runs_per_file=2)
    assert [f.name for f in first] == [f.name for f in again] == [f.name for f in other]
    assert [f.read_bytes() for f in first] == [f.read_bytes() for f in again]
    assert (tmp_path / "a" / TRUTH_FILENAME).read_bytes() == (tmp_path / "b" / TRUTH_FILENAME).read_bytes()
    assert [f.read_bytes() for f in first] != [f.read_bytes() for f in other]


def test_strategies_and_order():
    algorithms = make_algorithms()
    assert [a.name for a in algorithms] == list(ALGORITHM_NAMES)
    assert [a.strategy for a in algorithms] == [SimpleRunByRun, SingleIOV, SingleIOV]


def test_algorithms_pickle_for_shipping():
    restored = pickle.loads(pickle.dumps(make_algorithms(fail="TimeOffsetCalibration")))
    assert [a.name for a in restored] == list(ALGORITHM_NAMES)
    assert restored[2].algorithm.fail and not restored[0].algorithm.fail


def test_pedestals_one_result_per_run_then_completed(calibrated):
    _output_dir, messages = calibrated
    got = results(messages["PedestalCalibration"])
    expected_iovs = [IoV(exp, run, exp, run) for exp in (1, 2) for run in range(1, 21)]
    assert [r.iov for r in got] == expected_iovs
    assert all(isinstance(r, IoV_Result) and r.result == 0 for r in got)
    assert messages["PedestalCalibration"][-1]["value"] == "COMPLETED"


def test_gain_reads_pedestals_and_matches_truth(calibrated, data):
    output_dir, messages = calibrated
    assert results(messages["GainCalibration"]) == [IoV_Result(IoV(1, 1, 2, 20), 0)]
    assert messages["GainCalibration"][-1]["value"] == "COMPLETED"
    assert "read Pedestals payloads for 40 runs" in (output_dir / "GainCalibration_stdout").read_text()
    residuals = check_against_truth(output_dir / "outputdb", data[0] / TRUTH_FILENAME)
    assert residuals["Pedestals"] < 0.5      # ADC
    assert residuals["Gains"] < 0.02 * 0.8   # ADC/keV; true gains >= 0.8, so < 2 %


def test_time_offsets_match_truth(calibrated, data):
    output_dir, messages = calibrated
    assert messages["TimeOffsetCalibration"][-1]["value"] == "COMPLETED"
    residuals = check_against_truth(output_dir / "outputdb", data[0] / TRUTH_FILENAME)
    assert residuals["TimeOffsets"] < 0.2    # ns


def test_gain_without_pedestals_fails(data, tmp_path):
    _pedestal, gain, _time = make_algorithms()
    messages = run_strategy(gain, data[1], tmp_path)
    assert [r.result for r in results(messages)] == [3]
    assert messages[-1]["value"] == "FAILED"
    log = (tmp_path / "GainCalibration_stdout").read_text()
    assert "no Pedestals payload for 40 of 40 runs" in log
    residuals = check_against_truth(tmp_path / "outputdb", data[0] / TRUTH_FILENAME)
    assert residuals == {"Pedestals": None, "Gains": None, "TimeOffsets": None}


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_fail_option_fails_fast(name, data, tmp_path):
    messages = run_chain(make_algorithms(fail=name), data[1], tmp_path)
    assert list(messages) == list(ALGORITHM_NAMES[:ALGORITHM_NAMES.index(name) + 1])
    assert results(messages[name])[-1].result == 3
    assert messages[name][-1]["value"] == "FAILED"
    assert "failing on purpose" in (tmp_path / f"{name}_stdout").read_text()


def test_unknown_fail_name_lists_allowed_names():
    with pytest.raises(ValueError, match="PedestalCalibration, GainCalibration, TimeOffsetCalibration"):
        make_algorithms(fail="Nope")


def test_short_run_is_not_enough_data(tmp_path):
    files = simulate(tmp_path / "data", seed=3, runs_per_experiment=3, short_runs=[(2, 2)])
    pedestal = make_algorithms()[0]
    messages = run_strategy(pedestal, files, tmp_path / "out")
    codes = {tuple(r.iov[:2]): r.result for r in results(messages)}
    assert codes[(2, 2)] == 2 and sum(codes.values()) == 2 and len(codes) == 6
    assert messages[-1]["value"] == "COMPLETED"
