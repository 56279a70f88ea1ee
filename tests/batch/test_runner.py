"""The runner end to end on the real Slurm, PBS and SGE of `caf-hpc testbed up`: the demo
calibration, ordering, isolation from the worker jobs' logs, fail-fast, and no job left."""
from __future__ import annotations

import pytest

from caf_hpc import runner_for
from caf_hpc.extras.demo.run import run_demo
from caf_hpc.extras.standins.utils import ExpRun
from caf_hpc.steering import clusters
from tests.helpers.batch_queues import wait_until_no_jobs
from tests.helpers.requirements import require_testbed
from tests.helpers.scripted import ok, scripted

pytestmark = [pytest.mark.batch, pytest.mark.timeout(180)]

#: site -> testbed
SITES = {"localhost-slurm": "slurm", "localhost-pbs": "pbs", "localhost-sge": "sge"}


@pytest.fixture(scope="module", params=list(SITES))
def site_runner(request, tmp_path_factory):
    """A runner on the site with a cluster of its own (two jobs, named for this module);
    afterwards the cluster is closed and no job of it may remain in the batch queue."""
    site = request.param
    system = SITES[site]
    home = tmp_path_factory.mktemp(f"home-{system}")
    job_name = f"caf-e2e-{system}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in require_testbed(system).items():
            patch.setenv(key, value)
        patch.setenv("HOME", str(home))
        runner = runner_for(site, cluster={"job_name": job_name}, scale={"jobs": 2})
        try:
            yield runner, home / ".caf-hpc" / "logs" / site
        finally:
            clusters.close(runner.settings())
            assert wait_until_no_jobs(system, job_name) == []


def _batch_jobs(report) -> tuple[set, set]:
    """The batch jobs the collector (sub)jobs ran in, and those the strategies ran in."""
    from caf_hpc.report import load_records

    collector = {sj.result.where.job_id for job in report.collector_jobs for sj in job.subjobs.values()}
    records = load_records(report.outcome.output_dir)
    strategies = {a["job_id"] for r in records for s in r["strategies"] for a in s["attempts"]}
    return collector, strategies


def test_demo_calibration_runs_in_batch_jobs(site_runner, tmp_path):
    """Both of CAF's steps: the collector jobs (DaskBackend on the runner's cluster), then the algorithms."""
    runner, _ = site_runner
    report = run_demo(runner, tmp_path / "demo", runs=5, runs_per_collector_job=5)
    outcome = report.outcome
    assert outcome.final_state == "COMPLETED", outcome.error
    assert report.state == "completed" and len(report.collector.outputs) == 2  # 10 runs, 5 per collector job
    collector, strategies = _batch_jobs(report)
    assert collector and None not in collector and strategies and None not in strategies
    workers = {w.job_id for w in clusters.client_for(runner.settings()).cluster.workers.values()
               if getattr(w, "job_id", None)}
    assert collector | strategies <= workers, (collector, strategies, workers)  # the same two jobs for both
    pedestal_runs = [ExpRun(r.iov.exp_low, r.iov.run_low) for r in outcome.results["PedestalCalibration"]]
    assert pedestal_runs == [ExpRun(e, r) for e in (1, 2) for r in range(1, 6)]  # in order, each once
    assert [len(outcome.results[n]) for n in ("GainCalibration", "TimeOffsetCalibration")] == [1, 1]
    assert report.residuals["Pedestals"] < 0.5 and report.residuals["Gains"] < 0.02
    assert report.residuals["TimeOffsets"] < 0.2


@pytest.mark.root
def test_cpp_demo_runs_in_batch_jobs_with_cpp_output_in_the_algorithm_logs_only(site_runner, tmp_path, root):
    from caf_hpc.extras.demo.run import flavour_settings

    runner, job_logs = site_runner
    cpp_runner = runner_for(**{**runner.overrides, **flavour_settings("cpp")})
    assert cpp_runner.settings().cluster_key == runner.settings().cluster_key  # the same jobs
    report = run_demo(cpp_runner, tmp_path / "demo", runs=3, flavour="cpp")
    outcome = report.outcome
    assert outcome.final_state == "COMPLETED", outcome.error
    assert report.residuals["Pedestals"] < 0.5 and report.residuals["TimeOffsets"] < 0.2
    gain_log = report.log_file("GainCalibration").read_text()
    assert "GainCalibration: 16 gains, line resolution" in gain_log  # printf, on a batch worker
    job_log_text = "".join(p.read_text(errors="replace") for p in job_logs.iterdir() if p.is_file())
    assert "line resolution" not in job_log_text and "read Pedestals payloads" not in job_log_text


def test_output_stays_in_each_algorithm_log_not_in_the_job_logs(site_runner, calibrate):
    runner, job_logs = site_runner
    channels = ("print", "fd1", "fd2", "c_stdout", "log")
    algorithms = [scripted(name, *[(c, f"MARK-{name}-{c}") for c in channels], ("results", 2), ("final", "COMPLETED"))
                  for name in ("Alpha", "Beta")]
    outcome = calibrate(algorithms, runner=runner)
    assert outcome.final_state == "COMPLETED", outcome.error
    for name, other in (("Alpha", "Beta"), ("Beta", "Alpha")):
        log = (outcome.output_dir / f"{name}_stdout").read_text()
        assert all(f"MARK-{name}-{c}" in log for c in channels) and f"MARK-{other}" not in log
    job_log_text = "".join(p.read_text(errors="replace") for p in job_logs.iterdir() if p.is_file())
    assert job_log_text and "MARK-" not in job_log_text


def test_failed_strategy_stops_the_chain_on_a_batch_site(site_runner, calibrate):
    runner, _ = site_runner
    outcome = calibrate([ok("First"), scripted("Second", ("results", 1, 3), ("final", "FAILED")), ok("Third")],
                        runner=runner)
    assert outcome.final_state == "FAILED" and outcome.error is None
    assert list(outcome.results) == ["First", "Second"]


def test_no_key_material_in_the_job_scripts_or_job_logs(site_runner):
    runner, job_logs = site_runner
    (key,) = (job_logs.parents[2] / ".caf-hpc" / "tls").glob("*/key.pem")  # the cluster's own
    secrets = ["PRIVATE KEY"] + [line for line in key.read_text().splitlines() if line and not line.startswith("-")]
    cluster = clusters.client_for(runner.settings()).cluster
    texts = [cluster.job_script()] + [p.read_text(errors="replace") for p in job_logs.iterdir() if p.is_file()]
    assert len(texts) > 1 and not [s for s in secrets for text in texts if s in text]


@pytest.mark.parametrize("site", list(SITES))
def test_job_logs_of_a_successful_run_hold_no_error(site, tmp_path, monkeypatch, calibrate):
    """Closing the cluster cancels the jobs before it closes the workers: nothing in the logs looks like failure."""
    system = SITES[site]
    for key, value in require_testbed(system).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    job_name = f"caf-quiet-{system}"
    runner = runner_for(site, cluster={"job_name": job_name}, scale={"jobs": 2})
    try:
        outcome = calibrate([ok("First"), ok("Second")], runner=runner)
        assert outcome.final_state == "COMPLETED", outcome.error
        clusters.client_for(runner.settings()).wait_for_workers(2, timeout=60)
    finally:
        clusters.close(runner.settings())
    assert wait_until_no_jobs(system, job_name) == []
    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "home" / ".caf-hpc" / "logs" / site).iterdir()
            if p.is_file()}
    # A job cancelled while its nanny still starts (its worker may have registered already) logs
    # distributed's own "Nanny failed to start" traceback: that job never served the run
    # (docs/reliability.md). Every other job log must be quiet.
    served = {name: text for name, text in logs.items() if "Nanny failed to start" not in text}
    assert "Start worker" in "".join(served.values())  # logs that served are there (SGE kills without SIGTERM)
    noise = [f"{name}: {line}" for name, text in served.items() for line in text.splitlines() if any(
        word in line for word in ("Traceback", " ERROR ", " - ERROR - ", " - WARNING - ", "handshake failed",
                                  "CommClosedError"))]
    assert noise == [], noise  # ... and hold nothing that looks like a failure
