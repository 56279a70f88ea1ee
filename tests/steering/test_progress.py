"""What a run shows while it goes, and the run record it leaves in the output directory."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from caf_hpc import runner_for
from caf_hpc.basf2_compat import RunnerError
from caf_hpc.steering import progress
from caf_hpc.steering.progress import RECORD_FILE, RECORD_FORMAT, RECORD_VERSION
from tests.helpers.own_cluster import OwnCluster
from tests.helpers.scripted import ok, scripted

REPO = Path(__file__).resolve().parents[2]


def _record(outcome) -> dict:
    return json.loads((outcome.output_dir / RECORD_FILE).read_text())


def test_record_names_each_attempt_where_when_and_how_it_ended(calibrate):
    outcome = calibrate([ok("First", 2), scripted("Second", ("results", 1, 3), ("final", "FAILED")), ok("Third")])
    record = _record(outcome)
    assert (record["format"], record["version"], record["calibration"], record["iteration"]) == \
        (RECORD_FORMAT, RECORD_VERSION, "cal", 0)
    assert record["final_state"] == "FAILED" and record["target"] == "the local Dask cluster"
    assert record["dashboard"].startswith("http://127.0.0.1:")
    first, second = record["strategies"]  # Third never ran
    assert (first["algorithm"], first["final_state"], first["results"], first["result_codes"]) == \
        ("First", "COMPLETED", 2, {"0": 2})
    assert (second["algorithm"], second["final_state"], second["result_codes"]) == ("Second", "FAILED", {"3": 1})
    assert first["log"] == str(outcome.output_dir / "First_stdout")
    (attempt,) = first["attempts"]
    assert attempt["outcome"] == "ended" and attempt["returncode"] == 0 and attempt["signal"] is None
    assert attempt["host"] and attempt["pid"] and attempt["worker"].startswith("tcp://127.0.0.1:")
    assert record["started"] <= first["submitted"] <= attempt["started"] <= attempt["finished"] \
        <= second["submitted"] <= record["finished"]


def test_record_keeps_the_error_and_the_signal_of_a_crash(calibrate):
    outcome = calibrate([scripted("Crash", ("results", 1), ("segfault",))])
    assert isinstance(outcome.error, RunnerError)
    (entry,) = _record(outcome)["strategies"]
    assert entry["final_state"] == "FAILED" and "killed by SIGSEGV" in entry["error"]
    assert entry["attempts"][0]["signal"] == 11 and entry["attempts"][0]["returncode"] is None


def test_record_shows_a_lost_attempt_beside_the_one_that_finished(calibrate, tmp_path, monkeypatch):
    """The worker is killed only once the runner holds the attempt's 3 results (the record says so at once
    with RESULTS_EVERY at 0): the lost attempt must show them dropped, and the one that finished its own 5."""
    monkeypatch.setattr(progress, "RESULTS_EVERY", 0.0)
    arrived = tmp_path / "three-arrived"

    def watch(record: dict) -> None:
        attempts = [a for s in record["strategies"] for a in s["attempts"]]
        if attempts and attempts[0]["results"] >= 3:
            arrived.touch()
    stop = progress.add_listener(watch)
    losing = scripted("Unlucky", ("results", 3), ("wait_for_file", str(arrived), 60),
                      ("signal_worker_once", str(tmp_path / "killed"), "SIGKILL"), ("results", 2),
                      ("final", "COMPLETED"))
    try:
        outcome = calibrate([losing], runner=runner_for(retries=1))
    finally:
        stop()
    assert outcome.final_state == "COMPLETED", outcome.error
    lost, ended = _record(outcome)["strategies"][0]["attempts"]
    assert (lost["outcome"], lost["results"], lost["final_state"]) == ("lost", 3, None)
    assert lost["worker"].startswith("tcp://") and lost["started"] <= lost["finished"]
    assert (ended["outcome"], ended["results"], ended["final_state"]) == ("ended", 5, "COMPLETED")
    assert ended["worker"] != lost["worker"] and lost["finished"] <= ended["finished"]
    from tests.steering.test_lost_worker import _wait_for_workers

    _wait_for_workers(2)


def test_record_is_readable_while_the_run_goes(calibrate, tmp_path):
    seen: list = []

    def watch():
        path = tmp_path / "0" / "algorithm_output" / RECORD_FILE
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            try:
                record = json.loads(path.read_text())
                attempts = [a for s in record["strategies"] for a in s["attempts"]]
                if attempts and attempts[0]["outcome"] == "running":
                    seen.append(record)
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
    watcher = threading.Thread(target=watch)
    watcher.start()
    outcome = calibrate([scripted("Slow", ("results", 1), ("sleep", 1.5), ("final", "COMPLETED"))])
    watcher.join(timeout=35)
    assert outcome.final_state == "COMPLETED" and seen, "no record showed the strategy running"
    assert seen[0]["final_state"] is None and seen[0]["strategies"][0]["finished"] is None


def test_each_step_of_a_strategy_is_an_info_line(calibrate, caplog):
    caplog.set_level(logging.INFO, logger="caf_hpc")
    calibrate([ok("Plain", 2)])
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "cal: Plain submitted" in lines
    assert any(line.startswith("cal: Plain started on host ") and "Plain_stdout" in line for line in lines)
    assert any(line.startswith("cal: Plain ended COMPLETED: 2 result(s) (2× code 0) in ") for line in lines)


def test_strategy_without_a_worker_says_it_waits_and_what_the_cluster_has(calibrate, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="caf_hpc")
    cluster = OwnCluster(tmp_path)  # a scheduler without workers
    try:
        outcome = calibrate([ok("Patient")], runner=runner_for(address=cluster.address, worker_wait=4))
    finally:
        cluster.close()
    assert isinstance(outcome.error, RunnerError) and "found no worker" in str(outcome.error)
    waiting = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert waiting and waiting[0].startswith("cal: Patient waiting 2 s for a worker; 0 worker(s) connected, 0 busy; "
                                              f"the Dask scheduler at {cluster.address}"), waiting


@pytest.mark.timeout(120)
def test_progress_shows_by_default_in_a_script_that_configures_no_logging(tmp_path):
    script = tmp_path / "steering.py"
    script.write_text(f"""
import pathlib, sys
sys.path.insert(0, {str(REPO)!r})
from tests.helpers.scripted import ok
from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.driver import run_algorithms
print(run_algorithms(DaskAlgorithmsRunner, "quiet", [ok("Shown")], [], pathlib.Path("cal")).final_state)
""")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=100)
    assert done.stdout.strip() == "COMPLETED", done.stderr
    assert "[INFO] caf-hpc: quiet: Shown started on host " in done.stderr
    assert "[INFO] caf-hpc: quiet: Shown ended COMPLETED: 1 result(s)" in done.stderr
