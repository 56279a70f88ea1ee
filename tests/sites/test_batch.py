"""The localhost-* sites against the real batch systems of ``caf-hpc testbed up NAME`` (skipped when down)."""
from __future__ import annotations

import os

import pytest
from distributed import Client

from caf_hpc.cli import main
from caf_hpc.setting_rules import ALLOWED_FAILURES
from caf_hpc.sites import build_cluster, load_site
from tests.helpers.requirements import require_testbed

pytestmark = [pytest.mark.batch, pytest.mark.timeout(90)]

#: site -> (testbed, the environment variable holding the job id inside a job)
SITES = {"localhost-slurm": ("slurm", "SLURM_JOB_ID"),
         "localhost-pbs": ("pbs", "SLURM_JOB_ID"),
         "localhost-sge": ("sge", "JOB_ID")}


@pytest.fixture
def batch_system(request, isolated_sites, monkeypatch):
    """The site's testbed environment, with HOME (so TLS files and logs) under tmp_path."""
    name, job_variable = SITES[request.param]
    for key, value in require_testbed(name).items():
        monkeypatch.setenv(key, value)
    return request.param, job_variable


@pytest.mark.parametrize("batch_system", list(SITES), indirect=True)
def test_site_check_dry_submission_is_accepted(batch_system, capsys):
    site, _ = batch_system
    code = main(["sites", "check", site])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "accepted the job" in out


@pytest.mark.parametrize("batch_system", list(SITES), indirect=True)
def test_site_cluster_runs_a_task_in_a_batch_job_over_tls(batch_system, tmp_path):
    site, job_variable = batch_system
    cluster = build_cluster(load_site(site))
    try:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        assert cluster.scheduler.allowed_failures == ALLOWED_FAILURES  # the runner's retries decide, not Dask
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)
            # os.getenv travels by reference; a function of this test module would not import on the worker
            job_id = client.submit(os.getenv, job_variable, "", pure=False).result(timeout=30)
        assert job_id.isdigit()
    finally:
        cluster.close()
    logs = tmp_path / "home" / ".caf-hpc" / "logs" / site
    assert any(job_id in path.name for path in logs.iterdir()), sorted(p.name for p in logs.iterdir())
