"""How a measure runs CAF's collector step: the Job CAF builds, driven as CAF drives a backend, with clocks.

The Job is CAF's own (``collector_job``: its directories, sandbox, ``setup_cmds`` sourcing
a basf2 release's ``b2setup``, one subjob per input file), with the ``basf2`` command
replaced by the work a measure wants (a no-op, a sleep), so that both backends run
exactly the same scripts. ``step`` submits it from this (CAF's main) thread and hands it
to ``run_collector_step``, CAF's calibration thread with its 3 s heartbeat and 30 s full
update.

When the calibration thread first looks decides when it sees the end: in CAF it starts
polling at its init check, every 5 s, after the main thread's ``submit``, so that the
phase of its 3 s heartbeat against the jobs is random. Here the thread starts ``phase``
seconds after ``submit`` and the repetitions of a measure spread it evenly over the
heartbeat (``phases``), instead of sampling one phase only.

A subjob's end is the modification time of its exit-code file, which ``submit.sh``
writes as its last act: free, and the same for every backend.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caf_hpc.extras.standins import collection, collector, release
from caf_hpc.extras.standins.backends import Backend, Job

from .driving import BenchmarkError

OUTPUT = collector.OUTPUT_FILE
#: The trivial job: writes its output with a shell builtin, so that what is timed is the backend's path.
TRIVIAL = f": > {OUTPUT}"


def sleeping(seconds: float) -> str:
    return f"sleep {seconds:g}; : > {OUTPUT}"


@contextlib.contextmanager
def basf2_release(root: Path) -> Iterator[Path]:
    """A stand-in basf2 release, set up in this process as ``b2setup`` leaves it (CAF reads it into
    ``setup_cmds``), for as long as the block runs."""
    with release.set_up(release.make_tools(root / "basf2-tools")) as tools:
        yield tools


def input_files(directory: Path, count: int) -> list:
    """``count`` small input files (made once per directory): CAF's default splitter gives each a subjob."""
    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / f"raw{i}.txt" for i in range(count)]
    for path in files:
        if not path.exists():
            path.write_text("hit\n")
    return files


def caf_job(root: Path, name: str, files: list, command: str) -> Job:
    """The collector Job CAF builds for one collection (``MaxSubjobsSplitter(1000)``: a subjob per file), running
    ``command`` in place of ``basf2 run_collector_path.py``. Needs ``basf2_release``."""
    job = collection.collector_job("Bench", name, 0, root, files, collector.create_path())
    job.cmd = [command]
    return job


class Submitted:
    """A backend whose ``submit`` has been done already: the step's driver only follows the job."""

    def submit(self, job: Any) -> None:
        pass


@dataclass
class Step:
    """One collector step as a measure saw it (``time.time()`` throughout)."""

    submitted: float   # just before submit()
    returned: float    # when submit() returned
    last_end: float    # the last subjob's end: the latest mtime of the exit-code files
    seen: float        # when CAF's calibration thread saw the step complete
    subjobs: int

    @property
    def latency(self) -> float:
        """From the last subjob's end until CAF's loop saw the step complete (s)."""
        return self.seen - self.last_end

    @property
    def rate(self) -> float:
        """Subjobs per second through the backend: submit() to the last subjob's end."""
        return self.subjobs / (self.last_end - self.submitted)


def phases(repeats: int, heartbeat: float) -> list:
    """When the calibration thread first looks, for each repetition: evenly over one heartbeat."""
    return [heartbeat * i / repeats for i in range(repeats)]


def step(backend: Backend | Submitted, job: Job, phase: float, heartbeat: float, full_update: float,
         timeout: float = 900) -> Step:
    """Submits ``job`` to ``backend`` and follows it as CAF's calibration thread does, ``phase`` s later."""
    submitted = time.time()
    backend.submit(job)
    returned = time.time()
    time.sleep(phase)
    outcome = collection.run_collector_step(Submitted(), [job], heartbeat=heartbeat,
                                            full_update_interval=full_update, timeout=timeout)
    units = list(job.subjobs.values()) or [job]
    if outcome.state != "completed" or outcome.missing:
        states = sorted({unit.status for unit in units})
        raise BenchmarkError(f"collector step {job.name} ended {outcome.state} (subjobs: {', '.join(states)}; "
                             f"without output: {outcome.missing[:3]}); see {job.working_dir}")
    ends = [Path(unit.working_dir, Backend.exit_code_file).stat().st_mtime for unit in units]
    return Step(submitted, returned, max(ends), outcome.seen_at, len(units))


def first_running(job: Job, timeout: float = 120, poll: float = 0.001) -> float:
    """``time.time()`` at which a ``ready()`` of the job first showed a subjob ``running`` (polled every ``poll`` s:
    CAF's thread would see it at its next heartbeat)."""
    deadline = time.monotonic() + timeout
    units = list(job.subjobs.values()) or [job]
    while time.monotonic() < deadline:
        job.ready()
        if any(unit.status == "running" for unit in units):
            return time.time()
        if any(unit.status in ("failed", "completed") for unit in units):
            raise BenchmarkError(f"{job.name}: a subjob ended before one was seen running; make them longer")
        time.sleep(poll)
    raise BenchmarkError(f"{job.name}: no subjob running {timeout:g} s after submit(); see {job.working_dir}")
