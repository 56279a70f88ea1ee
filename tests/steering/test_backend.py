"""``DaskBackend``: CAF's collector step on the runner's cluster, driven exactly as CAF's framework drives a backend."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from itertools import pairwise

import pytest

from caf_hpc import DaskBackend, backend_for
from caf_hpc.extras.standins import collection
from caf_hpc.steering.settings import SettingsError
from tests.helpers.collectors import counting_job, input_files, shell_job, stand_in_release
from tests.helpers.own_cluster import OwnCluster
from tests.helpers.processes import left_running, new_mark

#: Faster than CAF's 3 s heartbeat, so that the tests are quick; the full update stays CAF's 30 s, so a test
#: that ends before it shows that ``ready()`` alone saw the jobs end.
HEARTBEAT = 0.2


@pytest.fixture
def release(tmp_path, monkeypatch):
    return stand_in_release(tmp_path, monkeypatch)


def _step(backend, jobs, timeout=120):
    return collection.run_collector_step(backend, jobs, heartbeat=HEARTBEAT, timeout=timeout)


def test_a_collector_step_runs_on_the_local_default_as_cafs_local_would(tmp_path, release):
    job = counting_job(tmp_path / "out", input_files(tmp_path / "raw", 4))
    outcome = _step(DaskBackend(), [job])
    assert outcome.state == "completed", outcome
    assert outcome.full_updates == 0, "CAF saw the end only at a full update, not through ready()"
    assert sorted(json.loads(open(f).read())["entries"].popitem()[1] for f in outcome.outputs) == [1, 2, 3, 4]
    for subjob in job.subjobs.values():
        assert subjob.status == "completed"
        for name in ("submit.sh", "stdout", "stderr", "__BACKEND_INPUT_FILES__.json", "CollectorOutput.root"):
            assert (subjob.working_dir / name).exists(), name
        assert (subjob.working_dir / "__BACKEND_CMD_EXIT_STATUS__").read_text().strip() == "0"
        assert "collecting 1 input file(s)" in (subjob.working_dir / "stdout").read_text()


def test_the_job_sees_an_empty_environment_plus_its_setup_as_with_cafs_local(tmp_path, release, monkeypatch):
    monkeypatch.setenv("CAF_HPC_TEST_SECRET", "not for the job")
    job = shell_job(tmp_path, "env", "env > CollectorOutput.root", 1)
    job.setup_cmds = [f"source {release}/b2setup standin"]
    assert _step(DaskBackend(), [job]).state == "completed"
    names = {line.split("=", 1)[0] for line in (job.subjobs[0].working_dir / "CollectorOutput.root").read_text()
             .splitlines()}
    assert "CAF_HPC_TEST_SECRET" not in names and "HOME" not in names
    assert {"PATH", "BELLE2_RELEASE", "BELLE2_TOOLS"} <= names


def test_each_subjob_is_running_while_it_runs(tmp_path, release):
    job = shell_job(tmp_path, "slow", "sleep 2; touch CollectorOutput.root", 2)
    backend = DaskBackend()
    backend.submit(job)
    assert {sj.status for sj in job.subjobs.values()} == {"submitted"}  # submit() returned at once
    deadline = time.monotonic() + 60
    seen = set()
    while not job.ready():
        assert time.monotonic() < deadline
        seen |= {sj.status for sj in job.subjobs.values()}
        time.sleep(0.05)
    assert "running" in seen and job.status == "completed"


def test_a_failing_collector_job_is_failed_with_its_log_in_the_steering_log(tmp_path, release, caplog):
    job = counting_job(tmp_path / "out", input_files(tmp_path / "raw", 2), fail=True)
    with caplog.at_level(logging.ERROR, logger="caf_hpc"):
        outcome = _step(DaskBackend(), [job])
    assert outcome.state == "failed"
    assert {sj.status for sj in job.subjobs.values()} == {"failed"}
    text = caplog.text
    assert "collector job Cal_hits_Iteration_0_0 exited with code 1" in text
    assert "this collector was asked to fail" in text and "stderr" in text


def test_a_job_that_exits_0_without_its_output_is_failed_before_cafs_own_check(tmp_path, release, caplog):
    job = shell_job(tmp_path, "nothing", "echo forgot to write", 1)
    with caplog.at_level(logging.ERROR, logger="caf_hpc"):
        outcome = _step(DaskBackend(), [job])
    assert outcome.state == "failed" and not outcome.missing  # CAF fails the step instead of crashing its thread
    assert "left no file matching its output_patterns ['CollectorOutput.root']" in caplog.text


def test_a_thousand_subjobs_are_queued_at_once_and_all_complete(tmp_path, release):
    job = shell_job(tmp_path, "many", "touch CollectorOutput.root", 1000)
    started = time.monotonic()
    backend = DaskBackend()
    backend.submit(job)
    submitted = time.monotonic() - started
    outcome = _step(_NoSubmit(), [job], timeout=300)
    assert outcome.state == "completed" and len(outcome.outputs) == 1000
    assert submitted < 60, f"submit() of 1000 subjobs blocked CAF's main thread for {submitted:.1f} s"


def test_one_ready_fetches_the_reports_of_every_subjob_that_ended_in_one_round_trip(tmp_path, release, monkeypatch):
    """CAF asks every 3 s: a round trip to a worker for each subjob that ended since (5 ms each on a busy
    machine) made one ready() take seconds for a thousand trivial subjobs, and CAF see the end that late."""
    import distributed

    job = shell_job(tmp_path, "ended", "touch CollectorOutput.root", 20)
    DaskBackend().submit(job)
    futures = [unit.future for unit in job.result.tracker.units.values()]
    deadline = time.monotonic() + 60
    while not all(future.done() for future in futures):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)  # their done callbacks, too, have told the backend
    gathers = []
    gather = distributed.Client._gather

    def counted(self, *args, **kwargs):
        gathers.append(args)
        return gather(self, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "_gather", counted)
    deadline, asked = time.monotonic() + 60, 1
    while not job.ready():
        assert time.monotonic() < deadline
        time.sleep(0.05)
        asked += 1
    assert job.status == "completed"
    assert len(gathers) <= asked, f"{len(gathers)} round trips for the reports in {asked} ready() call(s)"


class _NoSubmit:
    """The backend's jobs were submitted already; the driver only follows them."""

    def submit(self, job):
        pass


def test_max_running_limits_how_many_run_at_once(tmp_path, release):
    job = shell_job(tmp_path, "limited", "date +%s.%N > start; sleep 0.5; date +%s.%N > end; "
                                        "touch CollectorOutput.root", 4)
    job.backend_args = {"max_running": 1}
    assert _step(DaskBackend(), [job]).state == "completed"
    spans = sorted((float((sj.working_dir / "start").read_text()), float((sj.working_dir / "end").read_text()))
                   for sj in job.subjobs.values())
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(spans)), spans


def test_bad_backend_args_are_refused_naming_the_key(tmp_path, release):
    with pytest.raises(SettingsError, match=r"unknown key 'max_runing' \(did you mean 'max_running'\?\)"):
        DaskBackend(backend_args={"max_runing": 2})
    with pytest.raises(SettingsError, match="unknown runner setting"):
        backend_for(retires=2)


@pytest.fixture
def own_cluster(tmp_path):
    cluster = OwnCluster(tmp_path)
    yield cluster
    cluster.close()


def _worker_running(job):
    """The pid of the worker running the first subjob, once it runs."""
    deadline = time.monotonic() + 60
    while True:
        job.ready()  # brings the statuses up to date
        unit = next(iter(job.subjobs[0].result.tracker.units.values()))
        if unit.where is not None and job.subjobs[0].status == "running":
            return unit.where.pid
        assert time.monotonic() < deadline, "the collector job never started"
        time.sleep(0.05)


def test_a_lost_worker_reruns_the_subjob_from_a_clean_directory(tmp_path, release, own_cluster, caplog):
    own_cluster.add_worker()
    job = shell_job(tmp_path, "lost", "test -e CollectorOutput.root && exit 3; echo partial > CollectorOutput.root; "
                                      "sleep 3; echo whole > CollectorOutput.root", 1)
    backend = backend_for(address=own_cluster.address, retries=1)
    backend.submit(job)
    os.kill(_worker_running(job), signal.SIGKILL)
    own_cluster.add_worker()
    with caplog.at_level(logging.WARNING, logger="caf_hpc"):
        outcome = _step(_NoSubmit(), [job])
    assert outcome.state == "completed"  # the lost attempt's partial output was removed before the re-run
    assert (job.subjobs[0].working_dir / "CollectorOutput.root").read_text() == "whole\n"
    assert "lost its worker" in caplog.text and "retry 1 of 1" in caplog.text
    from caf_hpc.report import attempts, load_records

    (record,) = load_records(tmp_path / "lost")
    assert [a.outcome for a in attempts(record)] == ["lost", "COMPLETED"]


def test_a_subjob_losing_more_workers_than_retries_is_failed_as_the_clusters_fault(tmp_path, release, own_cluster,
                                                                                   caplog):
    own_cluster.add_worker()
    job = shell_job(tmp_path, "lost2", "sleep 30; touch CollectorOutput.root", 1)
    backend = backend_for(address=own_cluster.address, retries=0)
    backend.submit(job)
    os.kill(_worker_running(job), signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="caf_hpc"):
        outcome = _step(_NoSubmit(), [job], timeout=60)
    assert outcome.state == "failed"
    assert "lost its worker 1 time(s)" in caplog.text and "failure of the cluster, not of the job" in caplog.text


def test_ctrl_c_during_the_collector_step_leaves_no_job_process(tmp_path, release):
    """A terminal's Ctrl-C reaches the whole process group; CAF cancels nothing, the backend does."""
    mark, value = new_mark()
    script = tmp_path / "steering.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from caf_hpc import DaskBackend
        from caf_hpc.extras.standins import collection
        from tests.helpers.collectors import shell_job
        job = shell_job(Path({str(tmp_path)!r}), "long", "touch started; sleep 120; touch CollectorOutput.root", 2)
        collection.run_collector_step(DaskBackend(), [job], heartbeat=0.2)
        """))
    env = dict(os.environ, **{mark: value}, PYTHONPATH=os.getcwd())
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "long" / "0" / "started").exists():
            assert time.monotonic() < deadline and process.poll() is None, process.stdout.read()
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGINT  # as Python ends on Ctrl-C: a shell shows 130
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    said = lines.index("caf-hpc: interrupted (Ctrl-C); stopped 2 collector job(s) of long")
    # after it only CAF's own word that the stopped jobs failed, from its calibration thread, which polls on
    assert all(line.startswith("Setting long") and line.endswith("status to failed") for line in lines[said + 1:]), \
        output
    assert not left_running(value), "a collector job's process outlived the steering script"
    assert not (tmp_path / "long" / "0" / "CollectorOutput.root").exists()


def test_the_collector_step_leaves_a_run_record_that_the_report_shows_beside_the_strategies(tmp_path, release):
    from caf_hpc.report import attempts, load_records, summary

    job = counting_job(tmp_path / "out", input_files(tmp_path / "raw", 3))
    assert _step(DaskBackend(), [job]).state == "completed"
    (record,) = load_records(tmp_path / "out")
    assert record["kind"] == "collector" and record["calibration"] == "Cal" and record["iteration"] == 0
    assert record["final_state"] == "COMPLETED" and record["finished"]
    rows = attempts(record)
    assert sorted(a.algorithm for a in rows) == ["collector hits/0", "collector hits/1", "collector hits/2"]
    assert all(a.outcome == "COMPLETED" and a.worker.startswith("tcp://127.0.0.1:") and a.ran > 0 for a in rows)
    assert "collector hits/2" in summary([record])


def test_a_steering_script_killed_during_the_collector_step_leaves_nothing_in_a_restarts_way(tmp_path, release):
    """CAF resubmits every subjob of an unfinished collector step after a restart, into a directory it empties
    first: no process of the killed script may still be writing there."""
    mark, value = new_mark()
    script = tmp_path / "steering.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from caf_hpc import DaskBackend
        from caf_hpc.extras.standins import collection
        from tests.helpers.collectors import counting_job, input_files
        root = Path({str(tmp_path)!r})
        job = counting_job(root / "out", input_files(root / "raw", 2), sleep=float(sys.argv[1]))
        print(collection.run_collector_step(DaskBackend(), [job], heartbeat=0.2).state, flush=True)
        """))
    env = dict(os.environ, **{mark: value}, PYTHONPATH=os.getcwd())
    first = subprocess.Popen([sys.executable, str(script), "30"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    stdout = tmp_path / "out" / "Cal" / "0" / "collector_output" / "hits" / "0" / "stdout"
    try:
        deadline = time.monotonic() + 60
        while not (stdout.exists() and "collecting" in stdout.read_text()):
            assert time.monotonic() < deadline and first.poll() is None, first.stdout.read()
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)  # no atexit, no Ctrl-C handling: only what dies with it
        first.wait(timeout=10)
        assert not left_running(value, seconds=20), "processes of the killed script outlived it"
        again = subprocess.run([sys.executable, str(script), "0"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    assert again.stdout.strip().splitlines()[-1] == "completed", again.stdout + again.stderr


def test_jobs_fail_naming_the_cluster_when_no_worker_comes_within_worker_wait(tmp_path, release, own_cluster, caplog):
    job = shell_job(tmp_path, "alone", "touch CollectorOutput.root", 2)
    backend = backend_for(address=own_cluster.address, worker_wait=2)  # a scheduler without any worker
    with caplog.at_level(logging.ERROR, logger="caf_hpc"):
        outcome = _step(backend, [job], timeout=60)
    assert outcome.state == "failed"
    assert f"found no worker to run it within 2 s (worker_wait) on the Dask scheduler at {own_cluster.address}" \
        in caplog.text


def test_a_cluster_that_cannot_be_reached_fails_the_collector_step_instead_of_hanging_caf(tmp_path, release,
                                                                                          caplog):
    import socket

    with socket.socket() as unused:  # a port nothing listens on: refused at once
        unused.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{unused.getsockname()[1]}"
    job = shell_job(tmp_path, "nowhere", "touch CollectorOutput.root", 2)
    with caplog.at_level(logging.ERROR, logger="caf_hpc"):
        outcome = _step(backend_for(address=address), [job], timeout=60)
    assert outcome.state == "failed"
    assert f"collector nowhere: its 2 job(s) cannot run: cannot reach the Dask scheduler at {address}" in caplog.text
