"""A Dask scheduler and workers of the test's own, as processes it can kill: for faults of the cluster.

The runner reaches them by address, as a user's steering script reaches a scheduler
started by hand. Everything started here is stopped by its pid when the test ends.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from caf_hpc.steering import clusters
from caf_hpc.steering.settings import resolve


class OwnCluster:
    def __init__(self, directory: Path, scheduler_environment: dict | None = None) -> None:
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.processes: list = []
        self.workers: list = []
        self.scheduler = self._start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(self.scheduler_file),
                                     environment=scheduler_environment)
        self.address = self._wait_for_address()

    def _start(self, module: str, *args: str, environment: dict | None = None) -> subprocess.Popen:
        log = open(self.directory / f"{module.rsplit('.', 1)[-1]}-{len(self.processes)}.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=dict(os.environ, **(environment or {})))
        log.close()
        self.processes.append(process)
        return process

    def _wait_for_address(self, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                return json.loads(self.scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                assert self.scheduler.poll() is None, "the test's scheduler ended at start-up"
                time.sleep(0.1)
        raise TimeoutError(f"the test's scheduler wrote no address within {seconds:g} s")

    def add_worker(self, *arguments: str) -> subprocess.Popen:
        """One single-threaded worker without a nanny: killed, it stays dead. ``arguments``: more of ``dask worker``'s
        (``--resources``, ``--memory-limit``, ...)."""
        worker = self._start("distributed.cli.dask_worker", self.address, "--no-nanny", "--nthreads", "1",
                             "--death-timeout", "10", *arguments)
        self.workers.append(worker)
        return worker

    def settings(self, **overrides):
        return resolve(**dict(overrides, address=self.address))

    def close(self) -> None:
        clusters.close(self.settings())
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
