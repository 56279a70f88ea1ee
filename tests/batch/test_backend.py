"""The collector backend on the real Slurm, PBS and SGE of `caf-hpc testbed up`: CAF's collector step
in batch jobs, with the runner's cluster shared, and no job left."""
from __future__ import annotations

import json

import pytest

from caf_hpc import backend_for, runner_for
from caf_hpc.extras.standins import collection
from caf_hpc.steering import clusters
from tests.helpers.batch_queues import wait_until_no_jobs
from tests.helpers.collectors import counting_job, input_files, stand_in_release
from tests.helpers.requirements import require_testbed

pytestmark = [pytest.mark.batch, pytest.mark.timeout(240)]

#: site -> testbed
SITES = {"localhost-slurm": "slurm", "localhost-pbs": "pbs", "localhost-sge": "sge"}


@pytest.mark.parametrize("site", list(SITES))
def test_collector_step_runs_in_batch_jobs_on_the_runners_cluster(site, tmp_path, monkeypatch):
    system = SITES[site]
    for key, value in require_testbed(system).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    stand_in_release(tmp_path, monkeypatch)
    job_name = f"caf-collect-{system}"
    site_settings = {"cluster": {"job_name": job_name}, "scale": {"jobs": 2}}
    backend = backend_for(site, **site_settings)
    runner = runner_for(site, **site_settings)
    try:
        job = counting_job(tmp_path / "out", input_files(tmp_path / "raw", 4))
        outcome = collection.run_collector_step(backend, [job], heartbeat=0.5, timeout=180)
        assert outcome.state == "completed", [(sj.name, sj.status) for sj in job.subjobs.values()]
        assert sorted(json.loads(open(f).read())["entries"].popitem()[1] for f in outcome.outputs) == [1, 2, 3, 4]
        assert outcome.full_updates == 0
        tracker = job.subjobs[0].result.tracker
        assert {u.where.job_id for u in tracker.units.values()} - {None}, "no subjob ran in a batch job"
        assert runner.settings().cluster_key == tracker.settings.cluster_key  # one cluster for both steps
    finally:
        backend.close()
        clusters.close(runner.settings())
        assert wait_until_no_jobs(system, job_name) == []
