"""Worker pools on the real Slurm of `caf-hpc testbed up slurm`: an alignment-like algorithm that asks for two cores
runs in the pool's job, the others wherever a core is free; a strategy that outgrows its worker's memory fails as the
algorithm's failure with the figures, its batch job kept; and no job is left afterwards."""
from __future__ import annotations

import pytest

from caf_hpc import runner_for
from caf_hpc.sites import pools
from caf_hpc.steering import clusters
from tests.helpers.batch_queues import jobs_named, wait_until_no_jobs
from tests.helpers.requirements import require_testbed
from tests.helpers.scripted import scripted

pytestmark = [pytest.mark.batch, pytest.mark.timeout(240)]

JOB_NAME = "caf-pools-slurm"


@pytest.fixture(scope="module")
def pooled_runner(tmp_path_factory):
    """localhost-slurm with 512 MB jobs in its default pool and a pool "alignment" of one 2-core, 1 GB job."""
    home = tmp_path_factory.mktemp("home-pools")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in require_testbed("slurm").items():
            patch.setenv(key, value)
        patch.setenv("HOME", str(home))
        runner = runner_for("localhost-slurm", cluster={"job_name": JOB_NAME, "memory": "512MB"},
                            pools={"alignment": {"cores": 2, "memory": "1GB"}},
                            resources={"Alignment": {"cores": 2, "memory": "600MB"}})
        try:
            yield runner
        finally:
            clusters.close(runner.settings())
            assert wait_until_no_jobs("slurm", JOB_NAME) == []


def _attempts(outcome) -> dict:
    from caf_hpc.report import load_records

    return {s["algorithm"]: [a["job_id"] for a in s["attempts"]]
            for r in load_records(outcome.output_dir) for s in r["strategies"]}


def _steps(name: str, *more) -> object:
    return scripted(name, ("report_identity",), *more, ("results", 1), ("final", "COMPLETED"))


def test_the_alignment_runs_in_the_pool_job_and_the_rest_in_the_default_pool(pooled_runner, calibrate):
    outcome = calibrate([_steps("Pedestals"), _steps("Alignment"), _steps("Gains")], runner=pooled_runner)
    assert outcome.final_state == "COMPLETED", outcome.error
    client = clusters.client_for(pooled_runner.settings())
    pool_jobs = set(pools.of(client.cluster).job_ids().values())
    default_jobs = {str(job.job_id) for job in client.cluster.workers.values()}
    assert len(pool_jobs) == 1 and len(default_jobs) == 1 and not pool_jobs & default_jobs
    ran = _attempts(outcome)
    assert ran["Alignment"] == list(pool_jobs), (ran, pool_jobs)
    # the others ask for nothing: one core of any worker, the pool's second core included
    assert len(ran["Pedestals"]) == len(ran["Gains"]) == 1
    assert {*ran["Pedestals"], *ran["Gains"]} <= pool_jobs | default_jobs
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    declared = sorted((w["nthreads"], w["resources"].get("cores"), w["resources"].get("memory")) for w in workers)
    assert declared == [(1, 1, 512e6), (2, 2, 1e9)], declared  # what each pool's workers give, as Dask sees it


def test_a_strategy_past_its_workers_memory_fails_as_the_algorithm_and_keeps_its_job(pooled_runner, calibrate):
    """On the pool's 1 GB worker (two cores asked: there and nowhere else), less the margin for the worker's own
    processes: 790 MB. (dask-jobqueue hands the worker "0.93 GiB" for 1 GB: 999 MB.)"""
    runner = runner_for(**{**pooled_runner.overrides, "resources": {"Histograms": {"cores": 2}}})
    client = clusters.client_for(runner.settings())
    assert client is clusters.client_for(pooled_runner.settings())  # the same jobs
    before = set(client.scheduler_info(n_workers=-1)["workers"])
    jobs_before = sorted(jobs_named("slurm", JOB_NAME))
    outcome = calibrate([scripted("Histograms", ("print", "filling starts"), ("grow", 1500), ("final", "COMPLETED"))],
                        runner=runner)
    assert outcome.final_state == "FAILED"
    message = str(outcome.error)
    assert ("more than the 789 MB its worker gives it (the worker's memory limit 999 MB less 210 MB kept for the "
            "worker's own processes)") in message, message
    assert "batch job" in message and "failure of the algorithm, not of the cluster" in message, message
    assert (outcome.output_dir / "Histograms_stdout").read_text().count("filling starts") == 1  # not run again
    assert set(client.scheduler_info(n_workers=-1)["workers"]) == before
    assert sorted(jobs_named("slurm", JOB_NAME)) == jobs_before
