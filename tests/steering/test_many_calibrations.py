"""Many calibrations in threads on the local default: what ``n_workers`` starts, what is refused, what is said.

Each steering script runs in a process of its own, as a user's does, so that what reaches
its terminal (the local cluster's processes write to the same stderr) is what is checked.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from caf_hpc.steering import local_layout
from caf_hpc.steering.local_layout import LocalCapacityError, Machine

CHECKOUT = Path(__file__).resolve().parents[2]
GB = 1_000_000_000

STEERING = '''
import json, pathlib, sys, threading, time
from caf_hpc import runner_for
from caf_hpc.steering import clusters
from caf_hpc.extras.standins.driver import run_algorithms
from tests.helpers.scripted import scripted

count, sleep = int(sys.argv[1]), float(sys.argv[2])
runner = runner_for(**json.loads(sys.argv[3]))
{before}

def calibration(i, outcomes):
    algorithms = [scripted(f"C{{i}}A{{k}}", ("sleep", sleep), ("results", 1), ("final", "COMPLETED")) for k in range(3)]
    outcomes[i] = run_algorithms(runner, f"calibration{{i}}", algorithms, [], pathlib.Path(f"c{{i}}"))

def together(n, tag):
    outcomes = {{}}
    threads = [threading.Thread(target=calibration, args=(f"{{tag}}{{i}}", outcomes)) for i in range(n)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    return time.monotonic() - started, outcomes

alone, _ = together(1, "warm")  # the cluster up and its fork servers started
alone, _ = together(1, "alone")
wall, outcomes = together(count, "many")
states = sorted({{str(o.final_state) for o in outcomes.values()}})
errors = sorted({{str(o.error) for o in outcomes.values() if o.error is not None}})
try:
    workers = clusters.client_for(runner.settings()).scheduler_info(n_workers=-1)["workers"].values()
    threads = sorted(w["nthreads"] for w in workers)
except Exception as err:
    threads = repr(err)
print("REPORT " + json.dumps({{"done": len(outcomes), "states": states, "errors": errors, "threads": threads,
                              "alone": alone, "wall": wall}}))
'''


def _steer(tmp_path: Path, count: int, sleep: float, settings: str, before: str = "", limit_files: int = 0,
           timeout: float = 300) -> tuple:
    """Runs the steering script; returns its report (a dict, or None) and its stderr."""
    import json

    (tmp_path / "steering.py").write_text(textwrap.dedent(STEERING.format(before=before)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAF_HPC_")}
    env["PYTHONPATH"] = str(CHECKOUT)

    def limits() -> None:
        if limit_files:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit_files, limit_files))

    done = subprocess.run([sys.executable, "steering.py", str(count), str(sleep), settings], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limits)
    report = next((json.loads(line[len("REPORT "):]) for line in done.stdout.splitlines()
                   if line.startswith("REPORT ")), None)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return report, done.stderr


@pytest.mark.timeout(320)
def test_many_strategies_at_once_share_one_process_per_core(tmp_path):
    """``n_workers=16`` on this machine: 16 strategies at once, as threads of at most one worker process per core
    (it started 16 worker processes, 48 interpreters, which on 2 cores ran out of their start timeout with
    thousands of lines of tracebacks). 16 calibrations in threads all complete, at once, with nothing on stderr
    but the runner's own lines."""
    from dask.system import CPU_COUNT

    report, stderr = _steer(tmp_path, 16, 0.5, '{"n_workers": 16}')
    assert report is not None and report["done"] == 16 and report["states"] == ["COMPLETED"], report
    assert sum(report["threads"]) == 16, report
    assert len(report["threads"]) == min(16, CPU_COUNT), report
    assert "Traceback" not in stderr and "Timed out" not in stderr, stderr[-3000:]
    assert all(line.startswith("[INFO] caf-hpc: ") for line in stderr.splitlines()), stderr[-3000:]
    # at once, not queued behind each other: 16 queued two at a time would take 8 times as long
    assert report["wall"] < 4 * report["alone"], report


@pytest.mark.timeout(200)
def test_more_than_the_machine_holds_is_refused_before_anything_starts(tmp_path):
    """With 270 open files per process a worker process holds 3 strategies (256 kept for itself, 4 per strategy):
    asking for 8 at once on 2 cores is refused by every calibration's runner with what was asked, what the
    machine has and what to give, and no worker process starts. (It started 8 worker processes.)"""
    from dask.system import CPU_COUNT

    most = min(8, CPU_COUNT) * ((270 - local_layout.FILES_RESERVED) // local_layout.FILES_PER_STRATEGY)
    asked = most + 2
    report, stderr = _steer(tmp_path, 4, 0.1, f'{{"n_workers": {asked}}}', limit_files=270, timeout=150)
    assert report is not None and report["done"] == 4 and report["states"] == ["FAILED"], report
    assert len(report["errors"]) == 1, report
    error = report["errors"][0]
    assert f"cannot run {asked} strategies at once (n_workers={asked})" in error, error
    assert f"{CPU_COUNT} core(s)" in error and "270 open files per process" in error, error
    assert f"at most {most} fit by open files" in error and f"give n_workers={most} or fewer" in error, error
    assert "CAF_HPC_WORKERS" in error and "Nothing was started" in error, error
    assert "Traceback" not in stderr and "Dask dashboard" not in stderr, stderr[-3000:]


@pytest.mark.timeout(200)
def test_local_workers_that_end_at_start_are_one_clear_error(tmp_path):
    """A machine too busy to start the workers within their nannies' start timeout (here a timeout no start
    meets): every nanny ends. That is said at once, with what was asked, the machine's load and the workers'
    last error, and their tracebacks stay off the terminal. (Every strategy waited its whole worker_wait for a
    worker, and each nanny's traceback reached the terminal.)"""
    before = "clusters.LOCAL_DEATH_TIMEOUT = 0.001"
    report, stderr = _steer(tmp_path, 3, 0.1, '{"n_workers": 4, "worker_wait": 90}', before=before, timeout=150)
    assert report is not None and report["states"] == ["FAILED"] and len(report["errors"]) == 1, report
    error = report["errors"][0]
    assert "started no worker for 4 strategies at once (n_workers=4)" in error, error
    assert "worker processes ended while starting" in error and "load average" in error, error
    assert "Nanny start timed out" in error and "CAF_HPC_WORKERS" in error, error
    assert "Traceback" not in stderr, stderr[-3000:]


# --------------------------------------------------------------------------- the layout, on given machines
BIG = Machine(cores=2, available_memory=20 * GB, open_files=20_000, user_processes=None)


@pytest.mark.parametrize("asked, threads", [(None, (1, 1)), (1, (1,)), (2, (1, 1)), (5, (3, 2)), (16, (8, 8)),
                                            (64, (32, 32))])
def test_n_workers_is_strategies_at_once_over_at_most_one_process_per_core(asked, threads):
    layout = local_layout.layout(asked, BIG)
    assert layout.threads == threads and layout.slots == sum(threads)


def test_the_layout_says_what_runs_where():
    assert local_layout.layout(5, BIG).describe() == \
        "5 strategies at once (n_workers=5) in 2 worker processes of 3 or 2 threads, on 2 cores"
    assert local_layout.layout(None, BIG).describe() == \
        "2 strategies at once (one per core) in 2 worker processes of 1 thread, on 2 cores"


def test_memory_limits_what_fits_and_the_refusal_says_so():
    small = Machine(cores=4, available_memory=1 * GB, open_files=20_000, user_processes=None)
    most = (1 * GB - 4 * local_layout.WORKER_PROCESS_BYTES) // local_layout.STRATEGY_BYTES
    local_layout.layout(int(most), small)
    with pytest.raises(LocalCapacityError) as refused:
        local_layout.layout(int(most) + 1, small)
    message = str(refused.value)
    assert f"n_workers={most + 1}" in message and "4 core(s), 1.0 GB of memory available" in message
    assert f"at most {most} fit by memory" in message and f"give n_workers={most} or fewer" in message


def test_a_user_process_limit_counts_and_a_machine_with_no_room_says_what_to_free():
    crowded = Machine(cores=2, available_memory=20 * GB, open_files=20_000, user_processes=12)
    local_layout.layout(2, crowded)  # 2 worker processes of 5 processes each, and 2 strategies
    with pytest.raises(LocalCapacityError, match="at most 2 fit by processes"):
        local_layout.layout(3, crowded)
    full = Machine(cores=2, available_memory=100 * 1_000_000, open_files=20_000, user_processes=None)
    with pytest.raises(LocalCapacityError, match="free some memory on this machine, or run on a batch site"):
        local_layout.layout(None, full)
