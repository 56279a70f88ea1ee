"""Each algorithm's output lands in its own log file only; the caller's process is untouched."""
from __future__ import annotations

import logging
import os
import threading

import pytest

from caf_hpc import runner_for
from tests.helpers.scripted import ok, scripted

CHANNELS = ("print", "fd1", "fd2", "c_stdout", "log")


def _noisy(name):
    return scripted(name, *[(channel, f"MARK-{name}-{channel}") for channel in CHANNELS],
                    ("results", 1), ("final", "COMPLETED"))


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh-interpreter"])
def test_every_output_channel_lands_only_in_its_own_log(calibrate, fork_server):
    """(That nothing reaches the worker's output is checked where it can be seen whole:
    test_local_default runs a steering script in a process of its own.)"""
    outcome = calibrate([_noisy("Alpha"), _noisy("Beta")], runner=runner_for(fork_server=fork_server))
    assert outcome.final_state == "COMPLETED", outcome.error
    for name, other in (("Alpha", "Beta"), ("Beta", "Alpha")):
        log = (outcome.output_dir / f"{name}_stdout").read_text()
        for channel in CHANNELS:
            assert f"MARK-{name}-{channel}" in log
            assert f"MARK-{other}-{channel}" not in log


def test_what_a_strategy_changes_stays_in_its_process(calibrate):
    root = logging.getLogger()
    before = (os.getcwd(), dict(os.environ), root.level, list(root.handlers))
    one_worker = runner_for(n_workers=1)  # so that the second strategy runs where the first did
    outcome = calibrate([ok("Polluter", 1, ("pollute",)), ok("Checker", 1, ("report_state",))], runner=one_worker)
    assert outcome.final_state == "COMPLETED", outcome.error
    assert (os.getcwd(), dict(os.environ), root.level, list(root.handlers)) == before
    state = (outcome.output_dir / "Checker_stdout").read_text()
    assert f"cwd={outcome.output_dir} polluted=None root_level={logging.INFO}" in state


def test_two_calibrations_in_parallel_threads_do_not_cross(tmp_path, calibrate):
    outcomes = {}

    def calibration(tag):
        algorithms = [_noisy(f"{tag}{i}") for i in range(3)]
        for i, algorithm in enumerate(algorithms):
            algorithm.algorithm.steps[-2] = ("results", 5 + i)
        outcomes[tag] = calibrate(algorithms, name=tag, root=tmp_path / tag)

    threads = [threading.Thread(target=calibration, args=(tag,)) for tag in ("Left", "Right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    for tag, other in (("Left", "Right"), ("Right", "Left")):
        outcome = outcomes[tag]
        assert outcome.final_state == "COMPLETED", outcome.error
        assert list(outcome.results) == [f"{tag}{i}" for i in range(3)]
        assert [len(r) for r in outcome.results.values()] == [5, 6, 7]
        for i in range(3):
            log = (outcome.output_dir / f"{tag}{i}_stdout").read_text()
            assert f"MARK-{tag}{i}-fd1" in log and f"MARK-{other}" not in log


def test_strategy_process_does_not_pay_for_importing_dask(calibrate):
    outcome = calibrate([ok("Light", 1, ("report_imports", "distributed", "dask"))])
    log = (outcome.output_dir / "Light_stdout").read_text()
    assert "imported distributed: False" in log and "imported dask: False" in log
