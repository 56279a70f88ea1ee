"""The Dask scheduler in a batch job of its own (``dask_scheduler: {placement: job}``) on the real Slurm.

Each test runs a steering script in a process of its own, as a user would, so that what it
holds (its sockets, its children) and what it leaves (batch jobs, processes) is its own.
The scheduler's job carries the test's mark in its environment (Slurm passes the
submitter's environment on), so ``left_running`` also finds a scheduler that outlived it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.batch_queues import jobs_named, wait_until_no_jobs
from tests.helpers.processes import ctrl_c_noise, ctrl_c_when_ready, left_running, new_mark
from tests.helpers.requirements import require_testbed

pytestmark = [pytest.mark.batch, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]

HEAD = """
import json, os, pathlib, sys, time
sys.path.insert(0, {root!r})  # the repository: the tests package
started_at = time.monotonic()
from caf_hpc import runner_for
from caf_hpc.steering import clusters

runner = runner_for("localhost-slurm", cluster={{"job_name": {job_name!r}}}, scale={{"jobs": 1}},
                    dask_scheduler={{"placement": "job"}})
"""

DEMO = HEAD + """
import psutil
from caf_hpc.extras.demo.run import run_demo

report = run_demo(runner, pathlib.Path("demo"), runs=4, runs_per_collector_job=2)
cluster = clusters.client_for(runner.settings()).cluster
scheduler = cluster.scheduler
port = int(scheduler.address.rsplit(":", 1)[1])
mine = psutil.Process()
connections = mine.net_connections("inet")
listener = [c.pid for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.laddr.port == port]
environ = psutil.Process(listener[0]).environ() if listener else {{}}
descendants = {{p.pid for p in mine.children(recursive=True)}}
closing = time.monotonic()
clusters.close_all()
print(json.dumps({{
    "state": report.outcome.final_state, "error": str(report.outcome.error),
    "address": scheduler.address, "job_id": scheduler.job_id, "started_after": scheduler.started_after,
    "reachable_after_run_start": scheduler.reachable_at - started_at,
    "teardown": time.monotonic() - closing,
    "listening": [c.laddr.port for c in connections if c.status == "LISTEN"],
    "remote_ports": sorted({{c.raddr.port for c in connections if c.raddr}}),
    "scheduler_pid_is_a_descendant": bool(listener) and listener[0] in descendants,
    "scheduler_slurm_job": environ.get("SLURM_JOB_ID"),
}}))
"""

SLOW = HEAD + """
from tests.helpers.scripted import scripted
from caf_hpc.extras.standins.driver import run_algorithms

algorithm = scripted("Long", ("record", {started!r}, "running"), ("sleep", 120), ("final", "COMPLETED"))
run_algorithms(runner, "slow", [algorithm], [], pathlib.Path("calibration"))
"""

FAILING = HEAD + """
from tests.helpers.scripted import ok, scripted
from caf_hpc.extras.standins.driver import run_algorithms

outcome = run_algorithms(runner, "failing", [scripted("Broken", ("raise", "no constants")), ok("Later")], [],
                         pathlib.Path("calibration"))
scheduler = clusters.client_for(runner.settings()).cluster.scheduler
print(json.dumps({{"state": outcome.final_state, "error": str(outcome.error), "job_id": scheduler.job_id}}))
"""


def _steering(tmp_path: Path, template: str, **fields: str) -> tuple:
    """(process, job name, mark): the steering script started in a session of its own, as from a terminal."""
    variable, mark = new_mark()
    job_name = f"caf-schedjob-{mark[:8]}"
    script = tmp_path / "steering.py"
    script.write_text(textwrap.dedent(template.format(root=str(ROOT), job_name=job_name, **fields)))
    env = dict(os.environ, **require_testbed("slurm"), HOME=str(tmp_path / "home"), **{variable: mark})
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    return process, job_name, mark


def _what_it_saw(process: subprocess.Popen) -> dict:
    """The steering script's last line (JSON), once it ended by itself (or was killed after 200 s)."""
    try:
        stdout, stderr = process.communicate(timeout=200)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def _no_job_and_no_process_left(job_name: str, mark: str) -> None:
    assert wait_until_no_jobs("slurm", job_name, seconds=10) == []
    assert wait_until_no_jobs("slurm", f"{job_name}-scheduler", seconds=10) == []
    assert left_running(mark, seconds=10) == []


def test_calibration_with_the_scheduler_in_a_slurm_job_connects_outward_only_and_leaves_no_job(tmp_path):
    """The demo calibration (collectors and algorithms); the scheduler listens in a Slurm job of its own, not in
    the steering process nor in a process it started; the steering process listens nowhere and connects to the
    scheduler only; afterwards neither job nor process is left."""
    process, job_name, mark = _steering(tmp_path, DEMO)
    seen = _what_it_saw(process)
    assert seen["state"] == "COMPLETED", seen["error"]
    assert seen["address"].startswith("tls://"), seen
    assert seen["scheduler_slurm_job"] == seen["job_id"], seen      # the scheduler's process runs in its job
    assert not seen["scheduler_pid_is_a_descendant"], seen
    assert seen["listening"] == [], seen                              # nothing can connect to the steering process
    assert seen["remote_ports"] == [int(seen["address"].rsplit(":", 1)[1])], seen  # it connects to the scheduler only
    print(f"scheduler reachable {seen['reachable_after_run_start']:.1f} s after the script started "
          f"({seen['started_after']:.1f} s after its job's submission); teardown {seen['teardown']:.2f} s")
    _no_job_and_no_process_left(job_name, mark)


def test_ctrl_c_at_a_terminal_ends_the_scheduler_job_too(tmp_path):
    """Ctrl-C as a terminal sends it (SIGINT to the process group) while a strategy runs: one line, no noise,
    and neither the workers' job nor the scheduler's is left."""
    started = tmp_path / "started"
    process, job_name, mark = _steering(tmp_path, SLOW, started=str(started))

    def ready() -> bool:
        return started.exists()

    _, stderr, took = ctrl_c_when_ready(process, ready, seconds=120)
    assert process.returncode == -signal.SIGINT, stderr
    said = [line for line in stderr.splitlines() if "interrupted (Ctrl-C)" in line]
    assert len(said) == 1 and "stopped calibration slow" in said[0], stderr
    assert ctrl_c_noise(stderr) == [], stderr
    assert took < 30, f"took {took:.1f} s"
    _no_job_and_no_process_left(job_name, mark)


def _submitting_scheduler(process: subprocess.Popen, job_name: str) -> bool:
    """The scheduler job's ``sbatch`` runs, or its job is queued already."""
    import psutil

    try:
        if any(child.name() == "sbatch" for child in psutil.Process(process.pid).children()):
            return True
    except psutil.Error:
        return False
    return bool(jobs_named("slurm", f"{job_name}-scheduler"))


@pytest.mark.parametrize("moment", ["being submitted", "queued"])
def test_ctrl_c_while_the_scheduler_job_starts_cancels_it(tmp_path, moment):
    """Ctrl-C before the scheduler's job has written its address: while its ``sbatch`` runs (no job id yet),
    or once it is in the queue."""
    started = tmp_path / "started"
    process, job_name, mark = _steering(tmp_path, SLOW, started=str(started))

    def ready() -> bool:
        if moment == "queued":
            return bool(jobs_named("slurm", f"{job_name}-scheduler"))
        return _submitting_scheduler(process, job_name)

    _, stderr, took = ctrl_c_when_ready(process, ready, seconds=120)
    assert process.returncode == -signal.SIGINT, stderr
    assert "Traceback" not in stderr, stderr
    assert took < 30, f"took {took:.1f} s"
    print(f"Ctrl-C while the scheduler's job was {moment}: ended after {took:.2f} s; stderr: {stderr!r}")
    _no_job_and_no_process_left(job_name, mark)


def test_a_failing_strategy_leaves_no_job(tmp_path):
    process, job_name, mark = _steering(tmp_path, FAILING)
    seen = _what_it_saw(process)
    assert seen["state"] == "FAILED" and seen["job_id"], seen
    _no_job_and_no_process_left(job_name, mark)


def test_the_scheduler_ends_its_job_when_the_steering_process_is_killed(tmp_path):
    """SIGKILL leaves nobody to cancel anything: the scheduler ends itself once no steering process has been
    connected for client_timeout (here 3 s), and its job with it; the workers' job ends on its death_timeout,
    which this site sets to 60 s, so only the scheduler's is checked here."""
    started = tmp_path / "started"
    template = SLOW.replace('{{"placement": "job"}}', '{{"placement": "job", "client_timeout": 3}}')
    process, job_name, mark = _steering(tmp_path, template, started=str(started))
    try:
        for _ in range(1200):
            if started.exists() or process.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert started.exists(), process.communicate(timeout=10)
        assert jobs_named("slurm", f"{job_name}-scheduler")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert wait_until_no_jobs("slurm", f"{job_name}-scheduler", seconds=30) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        for job in jobs_named("slurm", job_name) + jobs_named("slurm", f"{job_name}-scheduler"):
            subprocess.run(["scancel", job], timeout=30, check=False)


def test_a_scheduler_job_that_ends_before_writing_its_address_is_reported_at_once(isolated_sites, monkeypatch):
    """Its Python cannot run the scheduler (here ``/bin/false``): the error names the job and where its output
    is, comes within seconds, not after start_wait, and leaves no job."""
    import time

    from caf_hpc.sites import load_site
    from caf_hpc.sites.build import build_cluster
    from caf_hpc.sites.scheduler_job import SchedulerJobError

    for key, value in require_testbed("slurm").items():
        monkeypatch.setenv(key, value)
    job_name = f"caf-schedjob-false-{os.getpid()}"
    site = load_site("localhost-slurm", {"cluster": {"job_name": job_name},
                                         "dask_scheduler": {"placement": "job", "job": {"python": "/bin/false"}}})
    began = time.monotonic()
    with pytest.raises(SchedulerJobError) as caught:
        build_cluster(site)
    took = time.monotonic() - began
    message = str(caught.value)
    assert "the Dask scheduler's batch job" in message and "ended before it wrote its address" in message, message
    assert "its output is in " in message and "logs/localhost-slurm" in message, message
    assert took < 60, f"took {took:.1f} s"
    assert wait_until_no_jobs("slurm", f"{job_name}-scheduler", seconds=10) == []
    assert jobs_named("slurm", job_name) == []  # no worker job was submitted
