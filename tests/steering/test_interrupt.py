"""Ctrl-C of a steering script whose calibrations run in threads, as CAF runs them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers.processes import interrupt_when_ready, left_running, new_mark

REPO = Path(__file__).resolve().parents[2]

STEERING = """
import pathlib, sys, threading, time
sys.path.insert(0, {repo!r})
from tests.helpers.scripted import ok, scripted
from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.driver import run_algorithms


def calibration(name):
    slow = scripted(name + "Slow", ("print", "started"), ("sleep", 120), ("final", "COMPLETED"))
    outcome = run_algorithms(DaskAlgorithmsRunner, name, [slow, ok(name + "Later")], [], pathlib.Path(name))
    sys.stdout.write(f"{{name}} ended {{outcome.final_state}}\\n")  # one write: the threads end together


# as CAF does: a (non-daemon) thread per calibration, the main thread polling them
threads = [threading.Thread(target=calibration, args=(name,), name=name) for name in ("first", "second")]
for thread in threads:
    thread.start()
while any(thread.is_alive() for thread in threads):
    time.sleep(0.1)
print("all ended")
"""


def test_ctrl_c_with_calibrations_in_threads_ends_them_at_once_and_leaves_nothing(tmp_path):
    script = tmp_path / "steering.py"
    script.write_text(STEERING.format(repo=str(REPO)))
    variable, mark = new_mark()
    steering = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=dict(os.environ, **{variable: mark}),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = [tmp_path / name / "0" / "algorithm_output" / f"{name}Slow_stdout" for name in ("first", "second")]
    output, took = interrupt_when_ready(steering, lambda: all(log.exists() and "started" in log.read_text()
                                                             for log in logs))
    assert steering.returncode == -signal.SIGINT or steering.returncode == 130, output
    assert took < 2, f"took {took:.1f} s\n{output}"
    assert "first ended FAILED" in output and "second ended FAILED" in output, output
    assert "interrupted (Ctrl-C); algorithm firstSlow was stopped" in output
    assert "Later" not in output and "all ended" not in output
    assert output.count("Traceback") == 1 and "\nKeyboardInterrupt\n" in output, output  # Python's own, of the main thread
    assert left_running(mark) == []
