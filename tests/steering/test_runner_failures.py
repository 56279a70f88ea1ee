"""Fail-fast and the reference runner's error cases: FAILED, raise, no final state, signals."""
from __future__ import annotations

import logging
import os
import threading

import pytest

from caf_hpc import runner_for
from caf_hpc.basf2_compat import RunnerError
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from tests.helpers.scripted import ok, scripted


def _only_ran(outcome, names):
    assert list(outcome.results) == names
    for later in ("Fourth", "Fifth", "After"):
        assert not (outcome.output_dir / f"{later}_stdout").exists()


def test_failed_third_of_five_stops_the_other_two(calibrate, caplog):
    caplog.set_level(logging.INFO, logger="caf_hpc")
    failing = scripted("Third", ("print", "third was here"), ("results", 1, 3), ("final", "FAILED"))
    outcome = calibrate([ok("First"), ok("Second"), failing, ok("Fourth"), ok("Fifth")])
    assert outcome.error is None
    assert outcome.final_state == "FAILED"
    _only_ran(outcome, ["First", "Second", "Third"])
    assert outcome.results["Third"][0].result == 3
    error_log = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "Third" in error_log and "FAILED" in error_log
    assert "| third was here" in error_log and "Third_stdout" in error_log


def test_log_tail_in_the_failure_message_is_the_last_twenty_lines(calibrate, caplog):
    caplog.set_level(logging.INFO, logger="caf_hpc")
    prints = [("print", f"line {i}") for i in range(30)]
    outcome = calibrate([scripted("Noisy", *prints, ("final", "FAILED"))])
    assert outcome.final_state == "FAILED"
    message = next(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "| line 29" in message and "| line 10" in message and "| line 9\n" not in message


@pytest.mark.parametrize("steps, expected", [
    ((("raise", "calibration constant out of range"),), "raised ValueError: calibration constant out of range"),
    ((("results", 1),), "exited without sending a final state"),
    ((("segfault",),), "killed by SIGSEGV"),
    ((("signal", "SIGABRT"),), "killed by SIGABRT"),
    ((("exit", 7),), "exited with code 7"),
    ((("final", "COMPLETED"), ("exit", 3)), "exited with code 3 after its final state COMPLETED"),
    ((("message", {"type": "progress", "value": 1}),), "unknown message type 'progress'"),
    ((("final", "COMPLETED"), ("results", 1)), "sent after the final state"),
    ((("final", "COMPLETED"), ("final", "COMPLETED")), "message 'final_state' sent after the final state"),
    ((("unpicklable_result",), ("final", "COMPLETED")), "a message cannot be pickled to reach the runner (TypeError"),
], ids=["raises", "no-final-state", "segfault", "abort", "exit-code", "exit-after-final", "unknown-type",
        "after-final", "two-final-states", "unpicklable-result"])
@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh-interpreter"])
def test_broken_strategy_raises_runner_error_and_stops_the_chain(calibrate, steps, expected, fork_server):
    outcome = calibrate([ok("Before"), scripted("Broken", ("print", "broken starts"), *steps), ok("After")],
                        runner=runner_for(fork_server=fork_server))
    assert outcome.final_state == "FAILED"
    assert isinstance(outcome.error, RunnerError)
    message = str(outcome.error)
    assert expected in message
    assert "algorithm Broken" in message and "Broken_stdout" in message
    assert "| broken starts" in message
    _only_ran(outcome, ["Before", "Broken"])


def test_strategy_that_never_falls_quiet_is_still_killed_at_its_time_limit(calibrate):
    outcome = calibrate([scripted("Chatty", ("trickle", 600, 0.05), ("final", "COMPLETED"))],
                        runner=runner_for(timeout=2))
    assert isinstance(outcome.error, RunnerError)
    assert "exceeded its time limit of 2 s" in str(outcome.error)
    assert len(outcome.results["Chatty"]) < 100  # 2 s of a result every 50 ms, not the whole 30 s


def test_strategy_over_its_time_limit_is_killed(calibrate):
    outcome = calibrate([scripted("Slow", ("sleep", 60), ("final", "COMPLETED")), ok("After")],
                        runner=runner_for(timeout=2))
    assert isinstance(outcome.error, RunnerError)
    assert "exceeded its time limit of 2 s" in str(outcome.error)
    _only_ran(outcome, ["Slow"])


def _divide(x):
    return 1 / x  # the line a user wants to see in the algorithm's log


class _FailsInThisFile(AlgorithmStrategy):
    """Defined here, in a module the workers cannot import: it travels by value."""

    def run(self, iov, iteration, queue):
        _divide(0)


class _Named:
    name = "Divider"

    def setInputFileNames(self, files):
        pass


def test_traceback_of_code_shipped_by_value_names_its_file_and_line(calibrate):
    algorithm = Algorithm(_Named())
    algorithm.strategy = _FailsInThisFile
    outcome = calibrate([algorithm])
    assert isinstance(outcome.error, RunnerError) and "raised ZeroDivisionError" in str(outcome.error)
    log = (outcome.output_dir / "Divider_stdout").read_text()
    assert f'File "{__file__}", line' in log and "in _divide" in log, log
    assert "return 1 / x  # the line a user wants to see" in log and "<dynamic-code>" not in log


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_hundred_megabytes_of_log_leave_the_runner_memory_flat(calibrate, caplog):
    caplog.set_level(logging.INFO, logger="caf_hpc")
    peak, sampling = [_rss_bytes()], threading.Event()

    def sample():
        while not sampling.wait(0.01):
            peak.append(_rss_bytes())
    before = peak[0]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcome = calibrate([scripted("Flood", ("flood", 100), ("final", "FAILED"))])
    finally:
        sampling.set()
        sampler.join(timeout=5)
    assert outcome.final_state == "FAILED"
    assert (outcome.output_dir / "Flood_stdout").stat().st_size > 100_000_000
    assert "| flood ends here" in "\n".join(r.getMessage() for r in caplog.records)  # the tail, read from the end
    assert max(peak) - before < 20_000_000, f"the runner grew by {(max(peak) - before) / 1e6:.0f} MB"
