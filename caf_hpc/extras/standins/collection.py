"""CAF's collector step without basf2: the job CAF builds, and the way CAF drives a backend with it.

``collector_job`` builds the Job as ``CalibrationMachine._create_collector_jobs`` does
(names, directories, command, sandbox, splitter, output patterns). ``run_collector_step``
then drives a backend with it exactly as CAF's framework does:

* ``backend.submit(job)`` from the main thread, once per job;
* in a calibration thread of its own: every 5 s, a check that no job is ``init`` any
  more, then ``collector_job.json`` is written;
* every 3 s (``Calibration.heartbeat``) ``job.ready()`` on every job, and every 30 s
  (``collector_full_update_interval``) ``job.update_status()`` first, with the
  "n/m Collector SubJobs finished" line;
* when every job is ready: completed if every one is, else failed; then each subjob's
  ``output_dir`` is globbed for its ``output_patterns``, and a subjob without a match
  ends the calibration thread as CAF's does (CAF's state machine then raises).
"""
from __future__ import annotations

import glob
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .backends import Job, MaxFilesSplitter, MaxSubjobsSplitter, exit_statuses
from .collector import OUTPUT_FILE, RUN_COLLECTOR_PATH, CollectorPath, write_path

B2 = logging.getLogger("caf")

#: CAF's timings: the init check, the calibration thread's heartbeat, the full update.
INIT_CHECK = 5.0
HEARTBEAT = 3.0
FULL_UPDATE_INTERVAL = 30.0


def collector_job(calibration: str, collection: str, iteration: int, root_dir: Any, input_files: Sequence,
                  path: CollectorPath, *, database_chain: Sequence = (), max_files_per_collector_job: Optional[int]
                  = None, max_collector_jobs: int = 1000, backend_args: Optional[dict] = None,
                  pre_collector_path: Optional[CollectorPath] = None) -> Job:
    """The collector Job CAF submits for one collection of one calibration's iteration."""
    job = Job(f"{calibration}_{collection}_Iteration_{iteration}")
    base = Path(root_dir).absolute() / calibration / str(iteration)
    job.output_dir = job.working_dir = base / "collector_output" / collection
    if job.working_dir.exists():
        shutil.rmtree(job.working_dir)
    sandbox = base / "collector_input" / collection
    sandbox.mkdir(parents=True, exist_ok=True)
    files = [RUN_COLLECTOR_PATH, write_path(path, sandbox / "Collector.path")]
    if pre_collector_path is not None:
        files.append(write_path(pre_collector_path, sandbox / "pre_collector.path"))
    config = sandbox / "collector_config.json"
    config.write_text(json.dumps({"database_chain": [list(map(str, entry)) if isinstance(entry, (list, tuple))
                                                     else str(entry) for entry in database_chain]}))
    files.append(config)
    job.input_sandbox_files = files
    job.cmd = ["basf2", "run_collector_path.py", "--job-information job_info.json"]
    job.append_current_basf2_setup_cmds()
    job.input_files = list({Path(f).absolute().as_uri() for f in input_files})  # a set, as CAF's: order varies
    if max_files_per_collector_job:
        job.splitter = MaxFilesSplitter(max_files_per_subjob=max_files_per_collector_job)
    else:
        job.splitter = MaxSubjobsSplitter(max_subjobs=max_collector_jobs)
    job.backend_args = dict(backend_args or {})
    job.output_patterns = [OUTPUT_FILE]
    return job


@dataclass
class CollectorOutcome:
    """How CAF's collector step ended, as its state machine would see it."""

    state: str                                   # "completed" or "failed" (or "timed out" in a bounded test)
    outputs: list = field(default_factory=list)  # every file matching the output patterns
    missing: list = field(default_factory=list)  # (sub)jobs without any: CAF's MachineError
    seen_at: float = 0.0                         # time.time() when the driver saw the step end
    full_updates: int = 0
    ready_calls: int = 0


def _units(job: Job) -> list:
    return list(job.subjobs.values()) or [job]


def run_collector_step(backend: Any, jobs: Sequence[Job], *, heartbeat: float = HEARTBEAT,
                       full_update_interval: float = FULL_UPDATE_INTERVAL, init_check: float = INIT_CHECK,
                       timeout: Optional[float] = None) -> CollectorOutcome:
    """Submits ``jobs`` from this (main) thread and follows them from a calibration thread, as CAF does."""
    for job in jobs:
        backend.submit(job)
    outcome: dict = {}
    thread = threading.Thread(target=_follow, args=(jobs, heartbeat, full_update_interval, init_check, timeout,
                                                    outcome), name="calibration", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)  # the main thread stays interruptible by Ctrl-C, as CAF's sleeps are
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _follow(jobs: Sequence[Job], heartbeat: float, full_update_interval: float, init_check: float,
            timeout: Optional[float], outcome: dict) -> None:
    try:
        outcome["result"] = _poll(jobs, heartbeat, full_update_interval, init_check, timeout)
    except BaseException as err:  # noqa: B902 - CAF's thread would end here; the caller re-raises
        outcome["error"] = err


def _poll(jobs: Sequence[Job], heartbeat: float, full_update_interval: float, init_check: float,
          timeout: Optional[float]) -> CollectorOutcome:
    started = time.monotonic()
    deadline = started + timeout if timeout else None
    while any(unit.status == "init" for job in jobs for unit in _units(job)):
        time.sleep(init_check)
    for job in jobs:  # beside the sandbox: <cal>/<iteration>/collector_input/<collection>/
        sandbox = Path(job.working_dir).parent.parent / "collector_input" / Path(job.working_dir).name
        sandbox.mkdir(parents=True, exist_ok=True)
        job.dump_to_json(sandbox / "collector_job.json")
    result = CollectorOutcome("running")
    last_update = started
    while True:
        if time.monotonic() - last_update > full_update_interval:
            for job in jobs:
                job.update_status()
            finished = sum(1 for job in jobs for unit in _units(job) if unit.status in exit_statuses)
            total = sum(len(_units(job)) for job in jobs)
            B2.info("%d/%d Collector SubJobs finished", finished, total)
            result.full_updates += 1
            last_update = time.monotonic()
        result.ready_calls += len(jobs)
        if all(job.ready() for job in jobs):
            result.seen_at = time.time()
            result.state = "completed" if all(job.status == "completed" for job in jobs) else "failed"
            break
        if deadline is not None and time.monotonic() > deadline:
            result.state = "timed out"
            return result
        time.sleep(heartbeat)
    if result.state == "completed":
        for job in jobs:
            for unit in _units(job):
                found = [f for pattern in unit.output_patterns for f in glob.glob(str(Path(unit.output_dir, pattern)))]
                result.outputs.extend(found)
                if not found:
                    result.missing.append(unit.name)
    return result
