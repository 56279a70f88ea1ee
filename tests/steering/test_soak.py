"""Soak: many calibrations with faults injected at random; every outcome is the one injected, nothing leaks.

The short version runs with the suite. The full one, 200 iterations:

    CAF_HPC_SOAK_ITERATIONS=200 python -m pytest tests/steering/test_soak.py

``CAF_HPC_SOAK_SEED`` repeats a run exactly (the seed is printed when the test fails).
``CAF_HPC_SOAK_RECORD=FILE`` writes the run's figures to FILE as JSON (seed, iterations,
outcomes, and what was counted before, halfway and after), for docs/reliability.md to cite.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import random
import re
import tempfile
import threading
import time

import psutil
import pytest
from dask.system import CPU_COUNT

from caf_hpc import DaskAlgorithmsRunner, runner_for
from caf_hpc.basf2_compat import RunnerError
from caf_hpc.steering import clusters
from tests.helpers.queues import new_queues_left, scheduler_queues
from tests.helpers.scripted import scripted

ITERATIONS = int(os.environ.get("CAF_HPC_SOAK_ITERATIONS", "12"))
SEED = int(os.environ.get("CAF_HPC_SOAK_SEED", str(random.SystemRandom().randrange(10**6))))
RECORD = os.environ.get("CAF_HPC_SOAK_RECORD")
#: Faults and how often each is drawn for a strategy.
FAULTS = {"none": 70, "raise": 10, "crash": 10, "worker-kill": 10}
#: What the runner must report for the first strategy that has each fault.
EXPECTED = {"raise": "raised ValueError: injected", "crash": "was killed by SIGSEGV"}

pytestmark = pytest.mark.timeout(60 + 20 * ITERATIONS)


def _strategy(name: str, fault: str, marker) -> object:
    steps: list[tuple] = [("results", 2)]
    if fault == "raise":
        steps.append(("raise", "injected"))
    elif fault == "crash":
        steps.append(("segfault",))
    elif fault == "worker-kill":
        steps.append(("signal_worker_once", str(marker), "SIGKILL"))
    return scripted(name, *steps, ("results", 1), ("final", "COMPLETED"))


def _expected(faults: list) -> tuple:
    """(final state, error text, names that ran): the first raise or crash ends the run; a kill is retried."""
    for index, fault in enumerate(faults):
        if fault in EXPECTED:
            return "FAILED", EXPECTED[fault], index + 1
    return "COMPLETED", None, len(faults)


#: Grid Engine's per-job temporary directory (<job>.<task>.<queue>), made and removed by its execd for the
#: batch tests' jobs, which may still be ending while the soak runs: not the steering process's.
_GRID_ENGINE_JOB_DIR = re.compile(r"^\d+\.\d+\.[\w.@-]+$")


def _footprint(client) -> dict:
    """What a leak would grow: this process's threads, descriptors, memory and processes; the workers'
    descriptors, memory and scratch files; and the temporary directory."""
    def worker_state(dask_worker=None):
        import os as os_

        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os_.sysconf("SC_PAGE_SIZE")
        scratch = os_.path.dirname(dask_worker.local_directory)
        return len(os_.listdir("/proc/self/fd")), rss, sum(len(files) for _, _, files in os_.walk(scratch))
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    workers = client.run(worker_state)
    return {"threads": threading.active_count(), "fds": len(os.listdir("/proc/self/fd")), "rss": rss,
            **_processes(client),
            "worker_fds": max(fds for fds, _, _ in workers.values()),
            "worker_rss": max(rss for _, rss, _ in workers.values()),
            "scratch_files": max(files for _, _, files in workers.values()),
            "tmp_entries": {name for name in os.listdir(tempfile.gettempdir()) if not _GRID_ENGINE_JOB_DIR.match(name)},
            "workers": len(workers)}


def _parent(process: psutil.Process):
    """Its parent's pid, None for a process that ended meanwhile (a strategy's, whose worker was just killed)."""
    try:
        return process.ppid()
    except psutil.NoSuchProcess:
        return None


def _processes(client) -> dict:
    """Below the cluster's nannies: its workers, their fork servers, and strategy processes."""
    nannies = {psutil.Process(pid).ppid() for pid in client.run(os.getpid).values()}
    below = [p for nanny in nannies for p in psutil.Process(nanny).children(recursive=True)]
    servers = {p.pid for p in below if "caf_hpc.worker.forkserver" in " ".join(_command(p))}
    workers = {p.pid for p in below if _parent(p) in nannies}
    strategies = [p for p in below if p.pid not in servers and p.pid not in workers]
    orphans = [p for p in psutil.process_iter(["ppid"]) if p.info["ppid"] == 1
               and "caf_hpc.worker.forkserver" in " ".join(_command(p))]  # info: None for one gone meanwhile
    return {"processes": len(nannies) + len(workers), "fork_servers": len(servers),
            "strategy_processes": len(strategies), "orphan_fork_servers": len(orphans)}


def _command(process) -> list:
    try:
        return process.cmdline()
    except psutil.Error:  # ended meanwhile
        return []


def _write_record(path: str, tally: dict, shown: list, seconds: float, commit: str) -> None:
    """The figures docs/reliability.md quotes, written before the checks so that a failed soak leaves them too."""
    import dask
    import distributed

    before, halfway, after = shown
    tmp = tempfile.gettempdir()  # a TMPDIR of the run's own keeps other users' files out of its count
    record = {"command": (f"TMPDIR={tmp} " if os.environ.get("TMPDIR") else "")
              + f"CAF_HPC_SOAK_ITERATIONS={ITERATIONS} CAF_HPC_SOAK_SEED={SEED} CAF_HPC_SOAK_RECORD={path} "
              "python -m pytest tests/steering/test_soak.py",
              "commit": commit, "seed": SEED, "iterations": ITERATIONS, "faults": FAULTS, "outcomes": tally,
              "seconds": round(seconds, 1), "before": before, "halfway": halfway, "after": after,
              "steering_rss_growth_second_half_mb": round((after["rss"] - halfway["rss"]) / 1e6, 2),
              "worker_rss_growth_second_half_mb": round((after["worker_rss"] - halfway["worker_rss"]) / 1e6, 2),
              "machine": {"logical_cores": os.cpu_count(), "python": platform.python_version(),
                          "dask": dask.__version__, "distributed": distributed.__version__}}
    with open(path, "w") as out:
        json.dump(record, out, indent=1)
        out.write("\n")


def _commit() -> str:
    """The checkout's commit, with "+changes" when it differs from it ("" outside git)."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+changes" if commit and dirty else "")


def _whole_again(client, count: int) -> None:
    client.wait_for_workers(count, timeout=60)  # the nanny restarts a killed worker


def test_faults_at_random_end_as_injected_and_leave_nothing_behind(calibrate, tmp_path, monkeypatch):
    # the runner's messages are checked through outcome.error; kept by pytest for its report, the
    # hundreds of them would grow this process's memory as a leak would
    monkeypatch.setattr(logging.getLogger("caf_hpc"), "propagate", False)
    rng = random.Random(SEED)
    started, commit = time.monotonic(), _commit() if RECORD else ""  # the code as this run loaded it
    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    runner = runner_for(retries=1)
    workers = DaskAlgorithmsRunner.settings().n_workers or CPU_COUNT
    _whole_again(client, workers)
    calibrate([scripted("Warm", ("results", 1), ("final", "COMPLETED"))], runner=runner, root=tmp_path / "warm")
    queues_before = set(scheduler_queues())
    before = _footprint(client)
    tally: dict = {}
    halfway = None
    for iteration in range(ITERATIONS):
        if iteration == ITERATIONS // 2:
            halfway = _footprint(client)
        faults = rng.choices(list(FAULTS), weights=list(FAULTS.values()), k=3)
        names = [f"S{iteration}x{i}" for i in range(3)]
        algorithms = [_strategy(name, fault, tmp_path / f"{name}.killed")
                      for name, fault in zip(names, faults, strict=True)]
        outcome = calibrate(algorithms, runner=runner, root=tmp_path / f"i{iteration}")
        state, error, ran = _expected(faults)
        context = f"seed {SEED}, iteration {iteration}, faults {faults}: {outcome.error}"
        assert outcome.final_state == state, context
        assert list(outcome.results) == names[:ran], context
        if error is None:
            assert outcome.error is None and all(len(outcome.results[n]) == 3 for n in names), context
        else:
            assert isinstance(outcome.error, RunnerError) and error in str(outcome.error), context
            assert f"algorithm {names[ran - 1]}" in str(outcome.error), context
        tally[state] = tally.get(state, 0) + 1
        if "worker-kill" in faults[:ran]:
            _whole_again(client, workers)
    after = _footprint(client)
    deadline = time.monotonic() + 15  # a killed worker's processes end with it: give them the time to notice
    while (after["strategy_processes"] or after["orphan_fork_servers"]) and time.monotonic() < deadline:
        time.sleep(0.2)
        after = _footprint(client)
    shown = [{k: len(v) if isinstance(v, set) else v for k, v in f.items()} for f in (before, halfway, after)]
    print(f"soak seed {SEED}: {ITERATIONS} iterations, {tally}; before, halfway, after: {shown}")
    if RECORD:
        _write_record(RECORD, tally, shown, time.monotonic() - started, commit)
    assert new_queues_left(queues_before, seconds=20) == []
    assert after["workers"] == before["workers"]
    assert after["threads"] <= before["threads"] + 2, (before, after)
    assert after["fds"] <= before["fds"] + 5, (before, after)
    assert after["worker_fds"] <= before["worker_fds"] + 5, (before, after)
    assert after["processes"] == before["processes"], (before, after)  # nannies and workers
    assert after["strategy_processes"] == 0 and after["orphan_fork_servers"] == 0, (before, after)
    assert after["scratch_files"] <= before["scratch_files"] + 2, (before, after)
    assert after["tmp_entries"] - before["tmp_entries"] == set(), (before, after)
    # memory: the first half may fill caches (Dask's task log, imports); the second half must not grow
    assert after["rss"] - halfway["rss"] < 8_000_000, (halfway, after)  # 2.8 MB measured (soak.json)
    assert after["worker_rss"] - halfway["worker_rss"] < 20_000_000, (halfway, after)
