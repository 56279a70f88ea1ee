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

The stand-in of CAF's framework (``caf.py``, ``machine.py``) uses the same pieces
(``wait_until_submitted``, ``follow``), with the submission in its own main loop.
"""
from __future__ import annotations

import glob
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .backends import Job, MaxFilesSplitter, MaxSubjobsSplitter, exit_statuses
from .collector import OUTPUT_FILE, RUN_COLLECTOR_PATH, CollectorPath, write_path

B2 = logging.getLogger("caf")

#: CAF's timings: the init check, the calibration thread's heartbeat, the full update.
INIT_CHECK = 5.0
HEARTBEAT = 3.0
FULL_UPDATE_INTERVAL = 30.0


def collector_job(calibration: str, collection: str, iteration: int, root_dir: Any, input_files: Iterable,
                  path: CollectorPath, *, database_chain: Sequence = (), dependent_databases: Sequence = (),
                  max_files_per_collector_job: int | None = None, max_collector_jobs: int | None = 1000,
                  backend_args: dict | None = None, pre_collector_path: CollectorPath | None = None,
                  output_patterns: Sequence = (OUTPUT_FILE,), path_name: str = "Collector.path") -> Job:
    """The collector Job CAF submits for one collection of one calibration's iteration.

    ``database_chain`` holds the collection's ``LocalDatabase``/``CentralDatabase`` objects (or
    plain strings), ``dependent_databases`` the ``(database.txt, payload dir)`` pairs CAF adds
    after them (each dependency's outputdb, then the previous iteration's); both land in
    ``collector_config.json`` as CAF writes it. With neither ``max_files_per_collector_job``
    nor ``max_collector_jobs`` the job has no splitter: one job, no subjobs.
    """
    job = Job(f"{calibration}_{collection}_Iteration_{iteration}")
    base = Path(root_dir).absolute() / calibration / str(iteration)
    job.output_dir = job.working_dir = base / "collector_output" / collection
    if job.working_dir.exists():
        shutil.rmtree(job.working_dir)
    sandbox = base / "collector_input" / collection
    sandbox.mkdir(parents=True, exist_ok=True)
    files = [RUN_COLLECTOR_PATH, write_path(path, sandbox / path_name)]
    if pre_collector_path is not None:
        files.append(write_path(pre_collector_path, sandbox / "pre_collector.path"))
    config = sandbox / "collector_config.json"
    chain = [_chain_entry(database) for database in database_chain]
    chain += [("local", (str(database_txt), str(payload_dir))) for database_txt, payload_dir in dependent_databases]
    config.write_text(json.dumps({"database_chain": chain}, indent=2))
    files.append(config)
    job.input_sandbox_files = files
    job.cmd = ["basf2", "run_collector_path.py", "--job-information job_info.json"]
    job.append_current_basf2_setup_cmds()
    job.input_files = list({_uri(f) for f in input_files})  # a set, as CAF's: the order varies
    if max_files_per_collector_job:
        job.splitter = MaxFilesSplitter(max_files_per_subjob=max_files_per_collector_job)
    elif max_collector_jobs:
        job.splitter = MaxSubjobsSplitter(max_subjobs=max_collector_jobs)
    job.backend_args = dict(backend_args or {})
    job.output_patterns = list(output_patterns)
    return job


def _chain_entry(database: Any) -> Any:
    """One database of a chain as CAF writes it into ``collector_config.json``."""
    kind = getattr(database, "db_type", None)
    if kind == "local":
        return ("local", (Path(database.filepath).as_posix(), Path(database.payload_dir).as_posix()))
    if kind == "central":
        return ("central", database.global_tag)
    if isinstance(database, (list, tuple)):
        return [str(entry) for entry in database]
    return str(database)


def _uri(name: Any) -> str:
    """A local path or ``file://`` URI as an absolute ``file://`` URI; any other URI as it is."""
    text = str(name)
    scheme = urlparse(text).scheme
    if scheme == "file":
        return Path(urlparse(text).path).absolute().as_uri()
    if scheme and len(scheme) > 1:  # root://, http://, ... (a one-letter scheme is a Windows drive)
        return text
    return Path(text).absolute().as_uri()


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
                       timeout: float | None = None) -> CollectorOutcome:
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
            timeout: float | None, outcome: dict) -> None:
    try:
        outcome["result"] = _poll(jobs, heartbeat, full_update_interval, init_check, timeout)
    except BaseException as err:  # CAF's thread would end here; the caller re-raises
        outcome["error"] = err


def _poll(jobs: Sequence[Job], heartbeat: float, full_update_interval: float, init_check: float,
          timeout: float | None) -> CollectorOutcome:
    queued = time.monotonic()
    wait_until_submitted(jobs, init_check)
    return follow(jobs, heartbeat=heartbeat, full_update_interval=full_update_interval, timeout=timeout,
                  last_update=queued)


def wait_until_submitted(jobs: Sequence[Job], init_check: float = INIT_CHECK) -> None:
    """CAF's ``_dump_job_config``: every ``init_check`` s, is any job still ``init``? Then ``collector_job.json``."""
    while any(unit.status == "init" for job in jobs for unit in _units(job)):
        B2.debug("Some Collector Jobs still in 'init' state. Waiting...")
        time.sleep(init_check)
    for job in jobs:  # beside the sandbox: <cal>/<iteration>/collector_input/<collection>/
        sandbox = Path(job.working_dir).parent.parent / "collector_input" / Path(job.working_dir).name
        sandbox.mkdir(parents=True, exist_ok=True)
        job.dump_to_json(sandbox / "collector_job.json")


def follow(jobs: Sequence[Job], *, heartbeat: float = HEARTBEAT, full_update_interval: float = FULL_UPDATE_INTERVAL,
           timeout: float | None = None, last_update: float | None = None,
           label: str = "") -> CollectorOutcome:
    """CAF's ``_poll_collector``: ``ready()`` every ``heartbeat`` s, a full update every ``full_update_interval`` s.

    ``last_update`` (``time.monotonic()``) is when the jobs were queued, from which CAF
    counts to its first full update. When every job is ready, the step completed if every
    job did, else failed; a completed step's outputs are globbed per (sub)job, and those
    without any are listed in ``missing`` (CAF's ``MachineError``).
    """
    started = time.monotonic()
    deadline = started + timeout if timeout else None
    result = CollectorOutcome("running")
    last_update = started if last_update is None else last_update
    while True:
        if time.monotonic() - last_update > full_update_interval:
            for job in jobs:
                job.update_status()
            finished = sum(1 for job in jobs for unit in _units(job) if unit.status in exit_statuses)
            total = sum(len(_units(job)) for job in jobs)
            B2.info("%d/%d Collector SubJobs finished%s", finished, total, label)
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


def progress(jobs: Sequence[Job]) -> tuple[int, int, int, int]:
    """(completed, failed, running, total) (sub)jobs, read without changing any status: for a display in another
    thread."""
    units = [unit for job in jobs for unit in _units(job)]
    completed = sum(1 for unit in units if unit._status == "completed")
    failed = sum(1 for unit in units if unit._status == "failed")
    running = sum(1 for unit in units if unit._status == "running")
    return completed, failed, running, len(units)
