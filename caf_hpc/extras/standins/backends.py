"""``caf.backends`` as CAF's collector step uses it: Job, SubJob, splitters, Result, Backend, Local.

The names, attributes, statuses and files are CAF's, so that a backend written against
these runs unchanged against basf2's module (``caf_hpc.basf2_compat`` picks the real one
when basf2 imports). Behaviour follows what CAF's code does, with three of its defects
modelled by their intent instead: a status setter that works (the stored copy looks the
statuses up with the wrong key and raises), ``Local`` setting ``submitted``, and
``ArgumentsSplitter(max_subjobs=None)`` meaning no maximum (CAF compares ``i >= None``).

What a backend must respect, and why:

* A Job that has subjobs takes the lowest status of its subjobs whenever it is read;
  a backend never sets it.
* ``Result.ready()`` caches ``True`` once its job reached an exit status: a status must
  never move back after ``failed`` or ``completed``.
* Unpickling a SubJob (or a Job holding subjobs) recurses through ``__getattr__``, as
  in CAF: jobs never travel to a worker; plain data does.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from functools import singledispatchmethod
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ...caf_types import Backend, Result, exit_statuses, job_statuses

B2 = logging.getLogger("caf")



class BackendError(Exception):
    """A backend cannot do what it was asked."""


# --------------------------------------------------------------------------- jobs
class _JobBase:
    """What a Job and a SubJob share: their status and readiness."""

    _status: str
    result: Any
    # Job's and SubJob's (a SubJob reads most of them from its parent)
    cmd: list
    args: list
    input_files: Sequence
    input_sandbox_files: list

    if TYPE_CHECKING:
        @property
        def name(self) -> str: ...

        @property
        def working_dir(self) -> Path: ...

    @property
    def status(self) -> str:
        subjobs = getattr(self, "subjobs", None)
        if subjobs:
            lowest = min((sj.status for sj in list(subjobs.values())), key=job_statuses.__getitem__)
            if lowest != self._status:
                self.status = lowest
        return self._status

    @status.setter
    def status(self, status: str) -> None:
        if status not in job_statuses:
            raise BackendError(f"{status!r} is no job status; allowed: {', '.join(job_statuses)}")
        if status == "failed":
            B2.error("Setting %s status to failed", self.name)
        else:
            B2.debug("Setting %s status to %s", self.name, status)
        self._status = status

    def ready(self) -> bool:
        """True once the job reached an exit status, as its backend's result sees it."""
        if not self.result:
            return False
        return bool(self.result.ready())

    def update_status(self) -> str:
        """Has the result refresh the job's (and its subjobs') status; returns the status."""
        if self.result:
            self.result.update_status()
        return self.status

    @property
    def full_command(self) -> str:
        return " ".join(str(part) for part in [*self.cmd, *self.args])

    def dump_input_data(self) -> None:
        """Writes the job's input files where the job reads them: ``__BACKEND_INPUT_FILES__.json``."""
        with open(Path(self.working_dir, "__BACKEND_INPUT_FILES__.json"), "w") as handle:
            json.dump(list(self.input_files), handle)

    def copy_input_sandbox_files_to_working_dir(self) -> None:
        for source in self.input_sandbox_files:
            source = Path(source)
            target = Path(self.working_dir, source.name)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy(source, target)


class Job(_JobBase):
    """A command for a backend to run, possibly split into subjobs."""

    name: str

    def __init__(self, name: str, job_dict: dict | None = None) -> None:
        self.name = name
        self.splitter: Any = None
        self._input_sandbox_files: list[Path] = []
        self._working_dir = Path.cwd()
        self._output_dir = Path.cwd()
        self.output_patterns: list = []
        self.cmd: list = []
        self.args: list = []
        self.input_files: list = []
        self.setup_cmds: list = []
        self.backend_args: dict = {}
        self.subjobs: dict = {}
        self.result: Any = None
        self._status = "init"
        if job_dict:
            self.input_sandbox_files = job_dict["input_sandbox_files"]
            self.working_dir = job_dict["working_dir"]
            self.output_dir = job_dict["output_dir"]
            self.output_patterns = job_dict["output_patterns"]
            self.cmd = job_dict["cmd"]
            self.args = job_dict["args"]
            self.input_files = job_dict["input_files"]
            self.setup_cmds = job_dict["setup_cmds"]
            self.backend_args = job_dict["backend_args"]
            for subjob in job_dict["subjobs"]:
                self.create_subjob(subjob["id"], input_files=subjob["input_files"], args=subjob["args"])

    def __repr__(self) -> str:
        return f"Job({self.name})"

    @property
    def input_sandbox_files(self) -> list:
        return self._input_sandbox_files

    @input_sandbox_files.setter
    def input_sandbox_files(self, value: Iterable) -> None:
        self._input_sandbox_files = [Path(p).absolute() for p in value]

    @property
    def working_dir(self) -> Path:
        return self._working_dir

    @working_dir.setter
    def working_dir(self, value: Any) -> None:
        self._working_dir = Path(value).absolute()

    @property
    def output_dir(self) -> Path:
        return self._output_dir

    @output_dir.setter
    def output_dir(self, value: Any) -> None:
        self._output_dir = Path(value).absolute()

    def create_subjob(self, i: int, input_files: Sequence | None = None, args: Sequence | None = None) -> SubJob:
        if i in self.subjobs:
            B2.warning("%s already contains SubJob(%s); it is not created again", self, i)
            return self.subjobs[i]
        subjob = SubJob(self, i, input_files)
        if args:
            subjob.args = list(args)
        self.subjobs[i] = subjob
        return subjob

    def check_input_data_files(self) -> None:
        """Drops missing local files and duplicates; writes the rest as URLs (``file:///...``)."""
        kept: list = []
        for uri in self.input_files:
            parsed = urlparse(str(uri))
            if parsed.scheme in ("", "file"):
                path = Path(parsed.path if parsed.scheme else str(uri)).absolute()
                if not path.is_file():
                    B2.warning("Requested input file %s does not exist; skipping it", uri)
                    continue
                uri = path.as_uri()
            if uri in kept:
                B2.warning("Requested input file %s was given twice; using it once", uri)
                continue
            kept.append(uri)
        if not kept and self.input_files:
            raise BackendError(f"none of {self}'s input files exist")
        self.input_files = kept

    def append_current_basf2_setup_cmds(self) -> None:
        """Adds the lines that set up this process's basf2 release inside the job (``b2setup``)."""
        tools = os.environ.get("BELLE2_TOOLS")
        if not tools:
            raise BackendError("No BELLE2_TOOLS found in environment")
        self.setup_cmds.append("#")
        self.setup_cmds.append("# Setup basf2 release")
        if os.environ.get("BELLE2_RELEASE"):
            self.setup_cmds.append(f"source {tools}/b2setup {os.environ['BELLE2_RELEASE']}")
        elif os.environ.get("BELLE2_LOCAL_DIR"):
            self.setup_cmds.append(f"pushd {os.environ['BELLE2_LOCAL_DIR']} > /dev/null")
            self.setup_cmds.append(f"source {tools}/b2setup")
            if os.environ.get("BELLE2_OPTION"):
                self.setup_cmds.append(f"b2code-option {os.environ['BELLE2_OPTION']}")
            self.setup_cmds.append("popd > /dev/null")
        self.setup_cmds.append("#")

    @property
    def job_dict(self) -> dict:
        return {
            "name": self.name,
            "input_sandbox_files": [str(p) for p in self.input_sandbox_files],
            "working_dir": str(self.working_dir),
            "output_dir": str(self.output_dir),
            "output_patterns": list(self.output_patterns),
            "cmd": list(self.cmd),
            "args": list(self.args),
            "input_files": list(self.input_files),
            "setup_cmds": list(self.setup_cmds),
            "backend_args": dict(self.backend_args),
            "subjobs": [{"id": sj.id, "input_files": list(sj.input_files or []), "args": list(sj.args)}
                        for sj in self.subjobs.values()],
        }

    def dump_to_json(self, file_path: Any) -> None:
        with open(file_path, "w") as handle:
            json.dump(self.job_dict, handle, indent=2)

    @classmethod
    def from_json(cls, file_path: Any) -> Job:
        with open(file_path) as handle:
            job_dict = json.load(handle)
        return cls(job_dict["name"], job_dict=job_dict)


class SubJob(_JobBase):
    """One part of a Job: its own id, input files and args; everything else is the parent's."""

    def __init__(self, job: Job, subjob_id: int, input_files: Sequence | None = None) -> None:
        self.id = subjob_id
        self.parent = job
        self.input_files = input_files if input_files is not None else []
        self.args: list = []
        self.result: Any = None
        self._status = "init"

    @property
    def output_dir(self) -> Path:
        return Path(self.parent.output_dir, str(self.id))

    @property
    def working_dir(self) -> Path:
        return Path(self.parent.working_dir, str(self.id))

    @property
    def name(self) -> str:
        return f"{self.parent.name}_{self.id}"

    @property
    def subjobs(self) -> list:
        return []

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.parent, attribute)

    def __repr__(self) -> str:
        return f"SubJob({self.name})"


# --------------------------------------------------------------------------- splitters
class SubjobSplitter(ABC):
    """Creates a Job's subjobs; called by the backend's ``submit``, not by CAF."""

    def __init__(self, *, arguments_generator: Any = None) -> None:
        self.arguments_generator = arguments_generator

    @abstractmethod
    def create_subjobs(self, job: Job) -> None:
        ...

    def assign_arguments(self, job: Job) -> None:
        if self.arguments_generator is None:
            return
        generator = self.arguments_generator.generator_function(*self.arguments_generator.args,
                                                                **self.arguments_generator.kwargs)
        for subjob in sorted(job.subjobs.values(), key=lambda sj: sj.id):
            subjob.args = list(next(generator))


class MaxFilesSplitter(SubjobSplitter):
    """Consecutive chunks of at most ``max_files_per_subjob`` input files."""

    def __init__(self, *, arguments_generator: Any = None, max_files_per_subjob: int = 1) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_files_per_subjob = max_files_per_subjob

    def create_subjobs(self, job: Job) -> None:
        if not job.input_files:
            B2.warning("%s has no input files: no subjobs created", job)
            return
        n = self.max_files_per_subjob
        for i, start in enumerate(range(0, len(job.input_files), n)):
            job.create_subjob(i, input_files=tuple(job.input_files[start:start + n]))
        self.assign_arguments(job)


class MaxSubjobsSplitter(SubjobSplitter):
    """At most ``max_subjobs`` subjobs, the files shared out as evenly as they go."""

    def __init__(self, *, arguments_generator: Any = None, max_subjobs: int = 1000) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_subjobs = max_subjobs

    def create_subjobs(self, job: Job) -> None:
        if not job.input_files:
            B2.warning("%s has no input files: no subjobs created", job)
            return
        files: Iterator = iter(job.input_files)
        left, slots, i = len(job.input_files), min(self.max_subjobs, len(job.input_files)), 0
        while left:
            take = ceil(left / slots)
            job.create_subjob(i, input_files=tuple(next(files) for _ in range(take)))
            left, slots, i = left - take, slots - 1, i + 1
        self.assign_arguments(job)


class ArgumentsGenerator:
    """A generator function and its arguments; each value it yields is one subjob's ``args``."""

    def __init__(self, generator_function: Any, *args: Any, **kwargs: Any) -> None:
        self.generator_function = generator_function
        self.args = args
        self.kwargs = kwargs


class ArgumentsSplitter(SubjobSplitter):
    """One subjob per value the arguments generator yields, each with all of the parent's files."""

    def __init__(self, *, arguments_generator: Any = None, max_subjobs: int | None = None) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_subjobs = max_subjobs

    def create_subjobs(self, job: Job) -> None:
        generator = self.arguments_generator.generator_function(*self.arguments_generator.args,
                                                                **self.arguments_generator.kwargs)
        for i, args in enumerate(generator):
            if self.max_subjobs is not None and i >= self.max_subjobs:
                raise BackendError(f"{job}: more than max_subjobs={self.max_subjobs} arguments")
            job.create_subjob(i, input_files=list(job.input_files), args=list(args))


# --------------------------------------------------------------------------- results and backends
# ``Result`` and ``Backend`` are the package's own (``caf_hpc.caf_types``): caf-hpc's collector
# backend derives from them where basf2 is missing.


class LocalResult(Result):
    """A (sub)job run by ``Local``'s pool: done when its async result is."""

    def __init__(self, job: Any, async_result: Any) -> None:
        super().__init__(job)
        self.result = async_result

    def update_status(self) -> None:
        jobs = list(self.job.subjobs.values()) if self.job.subjobs else [self.job]
        for job in jobs:
            result = job.result
            if getattr(result, "result", None) is not None and result.result.ready() \
                    and job.status not in exit_statuses:
                job.status = "completed" if result.result.get() == 0 else "failed"


class Local(Backend):
    """Runs each (sub)job's ``submit.sh`` in a process pool on this machine, with an empty environment."""

    def __init__(self, *, backend_args: dict | None = None, max_processes: int = 1) -> None:
        super().__init__(backend_args=backend_args)
        self.pool: Any = None
        self.max_processes = max_processes

    @property
    def max_processes(self) -> int:
        return self._max_processes

    @max_processes.setter
    def max_processes(self, value: int) -> None:
        self._max_processes = value
        if self.pool is not None:
            self.join()
        self.pool = multiprocessing.get_context("fork").Pool(processes=value)

    def join(self) -> None:
        self.pool.close()
        self.pool.join()
        self.pool = None

    @singledispatchmethod
    def submit(self, job: Any) -> Any:
        raise TypeError(f"Local.submit takes a Job, a SubJob or a list of them, not {type(job).__name__}")

    @submit.register
    def _(self, job: SubJob) -> None:
        self._prepare(job)
        async_result = self.pool.apply_async(self.run_job, (job.name, str(job.working_dir), str(job.output_dir),
                                                            self.submit_script))
        job.result = LocalResult(job, async_result)
        job.status = "submitted"

    @submit.register
    def _(self, job: list) -> None:
        for subjob in job:
            self.submit(subjob)

    @submit.register
    def _(self, job: Job) -> None:
        Path(job.working_dir).mkdir(parents=True, exist_ok=True)
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        job.check_input_data_files()
        if job.splitter:
            job.splitter.create_subjobs(job)
            self.submit(list(job.subjobs.values()))
            job.result = LocalResult(job, None)
            return
        self._prepare(job)
        async_result = self.pool.apply_async(self.run_job, (job.name, str(job.working_dir), str(job.output_dir),
                                                            self.submit_script))
        job.result = LocalResult(job, async_result)
        job.status = "submitted"

    def _prepare(self, job: Any) -> None:
        Path(job.working_dir).mkdir(parents=True, exist_ok=True)
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        job.copy_input_sandbox_files_to_working_dir()
        job.dump_input_data()
        with open(self.get_submit_script_path(job), "w") as batch_file:  # written inline, as CAF's Local does
            print("#!/bin/bash", file=batch_file)
            self._add_wrapper_script_setup(job, batch_file)
            self._add_setup(job, batch_file)
            print(job.full_command, file=batch_file)
            self._add_wrapper_script_teardown(job, batch_file)

    @staticmethod
    def run_job(name: str, working_dir: str, output_dir: str, script: str) -> int:
        with open(Path(working_dir, "stdout"), "w", buffering=1) as out, \
                open(Path(working_dir, "stderr"), "w", buffering=1) as err:
            return subprocess.run(["/bin/bash", script], cwd=working_dir, stdout=out, stderr=err,
                                  env={}).returncode
