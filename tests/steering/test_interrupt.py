"""Ctrl-C of a steering script whose calibrations run in threads, as CAF runs them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.processes import ctrl_c_noise, ctrl_c_when_ready, left_running, new_mark

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


@pytest.mark.parametrize("to", ["process group", "process"])
def test_ctrl_c_with_calibrations_in_threads_is_one_line_ends_them_at_once_and_leaves_nothing(tmp_path, to):
    """Ctrl-C at a terminal (SIGINT to the whole process group, the local cluster's processes had been in
    it: 45 s and 15 tracebacks), and ``kill -INT`` of the steering process alone. The bound is for a
    busy 2-core machine; a quiet one takes 0.25 s."""
    script = tmp_path / "steering.py"
    script.write_text(STEERING.format(repo=str(REPO)))
    variable, mark = new_mark()
    steering = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=dict(os.environ, **{variable: mark}),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    logs = [tmp_path / name / "0" / "algorithm_output" / f"{name}Slow_stdout" for name in ("first", "second")]
    def ready() -> bool:
        return all(log.exists() and "started" in log.read_text() for log in logs)

    output, stderr, took = ctrl_c_when_ready(steering, ready, group=to == "process group")
    assert steering.returncode == -signal.SIGINT, stderr  # ended by SIGINT, as Python ends: 130 in a shell
    assert took < 5, f"took {took:.1f} s\n{stderr}"
    assert "first ended FAILED" in output and "second ended FAILED" in output, output
    assert "Later" not in output and "all ended" not in output
    said = [line for line in stderr.splitlines() if "interrupted (Ctrl-C)" in line]
    assert len(said) == 1 and "calibration first at algorithm firstSlow" in said[0] \
        and "calibration second at algorithm secondSlow" in said[0], stderr
    assert ctrl_c_noise(stderr) == [], stderr  # no traceback, not even the main thread's KeyboardInterrupt
    assert left_running(mark, seconds=1) == []


def test_ctrl_c_during_a_deferred_step_comes_right_after_it():
    import time

    from caf_hpc import interrupt

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # Python runs signal handlers between bytecodes: it came during this
            done.append("step")
    assert done == ["step"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
