"""The local default works from a CAF-style steering script: unguarded, module level."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

HELPER = '''
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from caf_hpc.extras.standins.utils import IoV, IoV_Result


class BesideTheScript(AlgorithmStrategy):
    """Defined in a module beside the script, which the workers cannot import."""

    def run(self, iov, iteration, queue):
        print("beside-the-script strategy ran")
        queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), 0)})
        queue.put({"type": "final_state", "value": "COMPLETED"})
'''

STEERING = '''
import ctypes, logging, os, pathlib
from beside import BesideTheScript
from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from caf_hpc.extras.standins.utils import IoV, IoV_Result

print("STEERING SCRIPT EXECUTED")


class InTheScript(AlgorithmStrategy):
    def run(self, iov, iteration, queue):
        print("MARK-print")
        os.write(1, b"MARK-fd1\\n")
        os.write(2, b"MARK-fd2\\n")
        ctypes.CDLL(None).printf(b"MARK-c-stdout\\n")
        logging.getLogger("algorithm").warning("MARK-logging")
        for run in range(3):
            queue.put({"type": "result", "value": IoV_Result(IoV(1, run, 1, run), 0)})
        queue.put({"type": "final_state", "value": "COMPLETED"})


class Named:
    def __init__(self, name):
        self.name = name

    def setInputFileNames(self, files):
        pass


first, second = Algorithm(Named("InScript")), Algorithm(Named("Beside"))
first.strategy, second.strategy = InTheScript, BesideTheScript
outcome = run_algorithms(DaskAlgorithmsRunner, "unguarded", [first, second], [], pathlib.Path("calibration"))
print("FINAL", outcome.final_state, outcome.error, {k: len(v) for k, v in outcome.results.items()})

from caf_hpc.steering import clusters
worker_logs = clusters.client_for(DaskAlgorithmsRunner.settings()).get_worker_logs()
print("worker logs with markers:", sum("MARK-" in message for lines in worker_logs.values() for _, message in lines))
'''


def test_unguarded_steering_script_runs_on_the_local_default(tmp_path):
    (tmp_path / "beside.py").write_text(HELPER)
    (tmp_path / "steering.py").write_text(textwrap.dedent(STEERING))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAF_HPC_")}
    done = subprocess.run([sys.executable, "steering.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("STEERING SCRIPT EXECUTED") == 1, done.stdout
    assert "FINAL COMPLETED None {'InScript': 3, 'Beside': 1}" in done.stdout
    logs = tmp_path / "calibration" / "0" / "algorithm_output"
    assert "beside-the-script strategy ran" in (logs / "Beside_stdout").read_text()
    own_log = (logs / "InScript_stdout").read_text()
    # the scheduler and worker processes write to the script's stdout and stderr: no marker may
    for marker in ("MARK-print", "MARK-fd1", "MARK-fd2", "MARK-c-stdout", "MARK-logging"):
        assert marker in own_log
        assert marker not in done.stdout + done.stderr
    assert "worker logs with markers: 0" in done.stdout


KILLED = '''
import os, pathlib, psutil
from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.strategies import AlgorithmStrategy


class Quick(AlgorithmStrategy):
    def run(self, iov, iteration, queue):
        queue.put({"type": "final_state", "value": "COMPLETED"})


class Named:
    name = "Quick"

    def setInputFileNames(self, files):
        pass


algorithm = Algorithm(Named())
algorithm.strategy = Quick
print("FINAL", run_algorithms(DaskAlgorithmsRunner, "killed", [algorithm], [], pathlib.Path("out")).final_state)
print("PIDS", " ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
os._exit(0)  # as if killed: no atexit, no cluster.close()
'''


def test_local_cluster_ends_when_its_steering_script_is_killed(tmp_path):
    import psutil

    (tmp_path / "killed.py").write_text(KILLED)
    done = subprocess.run([sys.executable, "killed.py"], cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert "FINAL COMPLETED" in done.stdout, done.stderr[-3000:]
    pids = [int(p) for p in done.stdout.split("PIDS", 1)[1].split()]
    assert len(pids) >= 5  # scheduler, nannies, their workers, the workers' fork servers
    deadline = time.monotonic() + 60
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
