"""Strategies that do, step by step, what a test asks: send results, crash, print, wait.

This module lives in the test suite, which the Dask workers cannot import: every test
that uses it therefore also checks that user code travels to the worker by value.
(Shipped by value, a module-level *object* would be copied, so process-wide state such
as the conditions configuration is reached through its module.)
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from caf_hpc.extras.standins import conditions as conditions_module
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from caf_hpc.extras.standins.utils import IoV, IoV_Result

EVERYWHERE = IoV(0, 0, -1, -1)


class ScriptedAlgorithm:
    """A picklable algorithm object carrying the steps its strategy performs."""

    def __init__(self, name: str, steps: list) -> None:
        self.name = name
        self.steps = steps
        self.input_files: list = []

    def setInputFileNames(self, files) -> None:
        self.input_files = list(files)


class ScriptedStrategy(AlgorithmStrategy):
    def run(self, iov, iteration, queue):
        self.queue = queue
        self.setup_algorithm(iteration)
        for step, *args in self.algorithm.algorithm.steps:
            getattr(self, f"_{step}")(*args)

    # -- CAF messages --------------------------------------------------------
    def _results(self, count, code=0):
        for i in range(count):
            self.send_result(IoV_Result(IoV(1, i, 1, i), code))

    def _trickle(self, count, interval):
        """A result every ``interval`` seconds: a strategy that never falls quiet."""
        for i in range(count):
            self.send_result(IoV_Result(IoV(1, i, 1, i), 0))
            time.sleep(interval)

    def _unpicklable_result(self):
        self.send_result(IoV_Result(IoV(1, 1, 1, 1), threading.Lock()))

    def _final(self, state):
        self.send_final_state(state)

    def _message(self, message):
        self.queue.put(message)

    # -- output --------------------------------------------------------------
    def _print(self, text):
        print(text)

    def _fd1(self, text):
        os.write(1, f"{text}\n".encode())

    def _fd2(self, text):
        os.write(2, f"{text}\n".encode())

    def _flood(self, megabytes):
        """Writes ``megabytes`` MB of numbered lines to the log, as a debug print in a loop would."""
        line = b"x" * 99 + b"\n"
        block = line * 10_000  # 1 MB
        for _ in range(megabytes):
            os.write(1, block)
        os.write(1, b"flood ends here\n")

    def _c_stdout(self, text):
        libc = ctypes.CDLL(None)
        libc.printf(f"{text}\n".encode())
        libc.fflush(None)

    def _report_imports(self, *modules):
        for module in modules:
            print(f"imported {module}: {module in sys.modules}")

    def _print_file(self, path):
        """Says whether ``path`` exists and prints it (podman's /run/.containerenv names the image)."""
        if Path(path).exists():
            print(f"{path}: present\n{Path(path).read_text()}")
        else:
            print(f"{path}: absent")

    def _print_environ(self, name):
        print(f"{name}={os.environ.get(name)}")

    def _report_identity(self):
        print(f"uid={os.getuid()} SLURM_JOB_ID={os.environ.get('SLURM_JOB_ID', '')} python={sys.prefix}")

    def _report_parent(self):
        """The process the strategy's process was started by (a worker's fork server, or the worker)."""
        print(f"parent pid {os.getppid()}")

    def _log(self, text):
        logging.getLogger("scripted").warning(text)

    def _report_state(self):
        """What a strategy finds of the process it runs in, for tests of isolation and the contract."""
        print(f"state: cwd={os.getcwd()} polluted={os.environ.get('CAF_HPC_POLLUTED')} "
              f"root_level={logging.getLogger().level} "
              f"output_database_dir={type(self.output_database_dir).__name__}")

    def _spawn_grandchild(self, path):
        """Starts a program of its own (which must end with the strategy) and records its pid."""
        child = subprocess.Popen(["sleep", "120"])
        Path(path).write_text(str(child.pid))

    def _record_pid(self, path):
        Path(path).write_text(str(os.getpid()))

    def _record(self, path, text):
        with open(path, "a") as handle:
            handle.write(f"{text}\n")

    # -- process-wide changes that must stay in the child ---------------------
    def _pollute(self):
        os.environ["CAF_HPC_POLLUTED"] = "yes"
        logging.getLogger().setLevel(logging.DEBUG)
        os.chdir("/")

    # -- payload dependency ----------------------------------------------------
    def _commit(self, name, value):
        conditions_module.conditions.save(name, value, EVERYWHERE)

    def _expect_payload(self, name, value):
        found = conditions_module.conditions.get_payload(name, 1, 1)
        code = 0 if found == value else 3
        print(f"payload {name}: found {found!r}, expected {value!r}")
        self.send_result(IoV_Result(EVERYWHERE, code))
        self.send_final_state(self.COMPLETED if code == 0 else self.FAILED)

    # -- ways to end badly --------------------------------------------------
    def _raise(self, text):
        raise ValueError(text)

    def _exit(self, code):
        sys.stdout.flush()
        os._exit(code)

    def _signal(self, name):
        sys.stdout.flush()
        os.kill(os.getpid(), getattr(signal, name))

    def _segfault(self):
        sys.stdout.flush()
        ctypes.string_at(0)

    def _signal_worker_once(self, marker, name):
        """Sends signal ``name`` to the Dask worker process running this strategy, the first time only."""
        if _first_time(marker):
            sys.stdout.flush()
            os.kill(_worker_pid(), getattr(signal, name))
            time.sleep(60)  # a killed worker takes this process along; a stopped one is given up on

    def _signal_worker_times(self, counter, times, name):
        """Sends signal ``name`` to the Dask worker running this strategy, on each of its first ``times`` attempts."""
        attempts = int(Path(counter).read_text()) + 1 if Path(counter).exists() else 1
        Path(counter).write_text(str(attempts))
        if attempts <= times:
            sys.stdout.flush()
            os.kill(_worker_pid(), getattr(signal, name))
            time.sleep(60)  # a killed worker takes this process along

    def _cancel_own_job_once(self, marker, job_variable, command):
        """Cancels the batch job this strategy runs in (``command JOB_ID``), the first time only."""
        if _first_time(marker):
            print(f"cancelling batch job {os.environ[job_variable]}")
            subprocess.run([command, os.environ[job_variable]], check=True, timeout=30)
            time.sleep(60)

    def _grow(self, megabytes, step=20, interval=0.05):
        """Allocates ``megabytes`` MB, ``step`` MB at a time, every page written (as a growing histogram would)."""
        held = []
        for _ in range(0, megabytes, step):
            held.append(b"x" * (step * 2**20))
            time.sleep(interval)
        print(f"held {len(held) * step} MB")

    def _sleep(self, seconds):
        time.sleep(seconds)

    def _sleep_first_time(self, marker, seconds):
        """Sleeps ``seconds`` on the first attempt only (one its batch job's walltime ends)."""
        if _first_time(marker):
            print(f"sleeping {seconds} s in batch job {os.environ.get('SLURM_JOB_ID')}")
            sys.stdout.flush()
            time.sleep(seconds)

    def _wait_for_file(self, path, timeout=60):
        deadline = time.monotonic() + timeout
        while not Path(path).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear within {timeout} s")
            time.sleep(0.01)


def _first_time(marker) -> bool:
    if Path(marker).exists():
        return False
    Path(marker).touch()
    return True


def _worker_pid() -> int:
    """The Dask worker process above this one (the fork server, if any, sits in between)."""
    pid = os.getppid()
    if b"caf_hpc.worker.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return pid


def scripted(name: str, *steps) -> Algorithm:
    """A CAF Algorithm wrapper whose strategy performs ``steps``."""
    algorithm = Algorithm(ScriptedAlgorithm(name, list(steps)))
    algorithm.strategy = ScriptedStrategy
    return algorithm


def ok(name: str, results: int = 1, *before) -> Algorithm:
    """An algorithm that does ``before``, sends ``results`` results and completes."""
    return scripted(name, *before, ("results", results), ("final", "COMPLETED"))
