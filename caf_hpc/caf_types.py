"""CAF's own types that the runner and the collector backend build on, for when basf2 is missing.

``caf_hpc.basf2_compat`` takes these from basf2's CAF (``caf.runners``, ``caf.utils``,
``caf.backends``) when a release is set up, and from here otherwise. They are defined in
the package itself, not in the stand-ins of ``caf_hpc.extras``, so that the runner never
imports the extras: the stand-ins (``caf_hpc.extras.standins.runners``, ``.utils``,
``.backends``) re-export them and build the rest of CAF on them. Names, fields and
behaviour are CAF's, so that results and errors are the types CAF checks.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import namedtuple
from pathlib import Path
from typing import Any


# --------------------------------------------------------------------------- caf.runners
class RunnerError(Exception):
    """Raised by a runner when a strategy ends in a way CAF cannot interpret."""


class Runner(ABC):
    @abstractmethod
    def run(self, *args: Any, **kwargs: Any) -> Any:
        ...


class AlgorithmsRunner(Runner):
    """Base class of CAF's algorithms runners; CAF sets the attributes, then calls ``run``."""

    FAILED = "FAILED"
    COMPLETED = "COMPLETED"

    def __init__(self, name: str) -> None:
        self.name = name
        self.input_files: list = []
        self.database_chain: list = []
        self.dependent_databases: list = []
        self.output_database_dir = ""
        self.results: dict = {}
        self.final_state: str | None = None
        self.algorithms: Any = None
        self.output_dir = ""


# --------------------------------------------------------------------------- caf.utils
class IoV(namedtuple("IoV_Base", ["exp_low", "run_low", "exp_high", "run_high"])):
    """An interval of validity; -1 for the high end means 'open ended'."""

    __slots__ = ()

    def __new__(cls, exp_low: int = -1, run_low: int = -1, exp_high: int = -1, run_high: int = -1) -> IoV:
        return super().__new__(cls, exp_low, run_low, exp_high, run_high)

    def contains(self, exprun: ExpRun) -> bool:
        lo = (self.exp_low, self.run_low) <= (exprun.exp, exprun.run)
        if self.exp_high == -1:
            return lo
        if self.run_high == -1:
            return lo and exprun.exp <= self.exp_high
        return lo and (exprun.exp, exprun.run) <= (self.exp_high, self.run_high)


IoV_Result = namedtuple("IoV_Result", ["iov", "result"])


class ExpRun(namedtuple("ExpRun_Base", ["exp", "run"])):
    """An (experiment, run) pair."""

    __slots__ = ()

    def make_iov(self) -> IoV:
        return IoV(self.exp, self.run, self.exp, self.run)


# --------------------------------------------------------------------------- caf.backends
#: CAF's job statuses, in the order a job's status is the lowest of its subjobs'.
job_statuses = {"init": 0, "submitted": 1, "running": 2, "failed": 3, "completed": 4}
#: Statuses a job does not leave.
exit_statuses = ["failed", "completed"]


class Result:
    """A backend's handle on a submitted (sub)job: is it done, and how did it end."""

    exit_code_file_name = "__BACKEND_CMD_EXIT_STATUS__"

    def __init__(self, job: Any) -> None:
        self.job = job
        self._is_ready = False
        self.time_to_wait_for_exit_code_file = 5 * 60
        self.exit_code_file_initial_time: float | None = None

    def ready(self) -> bool:
        """True once the job's status is an exit status; then True for good."""
        if not self._is_ready and self.job.status in exit_statuses:
            self._is_ready = True
        return self._is_ready

    def update_status(self) -> None:
        raise NotImplementedError

    def get_exit_code_from_file(self) -> int:
        if self.exit_code_file_initial_time is None:
            self.exit_code_file_initial_time = time.time()
        with open(Path(self.job.working_dir, self.exit_code_file_name)) as handle:
            return int(handle.read().strip())


class Backend(ABC):
    """What CAF's ``CAF.backend`` accepts: something that runs a collector Job."""

    submit_script = "submit.sh"
    exit_code_file = "__BACKEND_CMD_EXIT_STATUS__"
    default_backend_args: dict = {}

    def __init__(self, *, backend_args: dict | None = None) -> None:
        self.backend_args = {**self.default_backend_args, **(backend_args or {})}

    @abstractmethod
    def submit(self, job: Any) -> Any:
        ...

    def get_submit_script_path(self, job: Any) -> Path:
        return Path(job.working_dir, self.submit_script)

    def _add_wrapper_script_setup(self, job: Any, batch_file: Any) -> None:
        """The traps and the exit helper every script starts with (exit codes 130 and 143 on signals)."""
        print(f"trap '(trap - SIGINT SIGTERM; echo \"Trapped Ctrl-C, exiting\"; echo 130 > {self.exit_code_file})' "
              "SIGINT", file=batch_file)
        print(f"trap '(trap - SIGINT SIGTERM; echo \"Trapped SIGTERM, exiting\"; echo 143 > {self.exit_code_file})' "
              "SIGTERM", file=batch_file)
        print("write_exit_code() {", file=batch_file)
        print(f"  echo \"Exit code: $1\"; echo \"$1\" > {self.exit_code_file}; exit \"$1\"", file=batch_file)
        print("}", file=batch_file)

    def _add_setup(self, job: Any, batch_file: Any) -> None:
        for line in job.setup_cmds:
            print(line, file=batch_file)

    def _add_wrapper_script_teardown(self, job: Any, batch_file: Any) -> None:
        print("write_exit_code $?", file=batch_file)
