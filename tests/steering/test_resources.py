"""Resources per algorithm on real local clusters: an algorithm runs only on a worker that gives what it asks for,
is refused before anything is submitted where no worker does, and one that outgrows its memory fails as the
algorithm's failure with the figures, its worker kept and the strategy not run again."""
from __future__ import annotations

import pytest
from distributed import Client

from caf_hpc import resources, runner_for
from caf_hpc.steering import clusters
from caf_hpc.steering.settings import SettingsError, resolve
from tests.helpers.own_cluster import OwnCluster
from tests.helpers.scripted import ok, scripted

pytestmark = pytest.mark.timeout(180)

ALIGNMENT = {"cores": 4, "memory": "2GB"}


@pytest.fixture(scope="module")
def resource_cluster(tmp_path_factory):
    """A scheduler with two workers that declare Dask resources: a small one and one the alignment fits on."""
    cluster = OwnCluster(tmp_path_factory.mktemp("resource-cluster"))
    try:
        cluster.add_worker("--resources", "cores=1,memory=1000000000", "--name", "small")
        cluster.add_worker("--resources", "cores=4,memory=4000000000", "--name", "large",
                           "--memory-limit", "600MB")
        with Client(cluster.address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield cluster
    finally:
        cluster.close()


def _log(outcome, name):
    return (outcome.output_dir / f"{name}_stdout").read_text()


def _worker_names(cluster):
    with Client(cluster.address, timeout=30) as client:
        return {info["name"]: address for address, info in client.scheduler_info(n_workers=-1)["workers"].items()}


def test_the_algorithm_runs_only_on_the_worker_that_gives_what_it_asks_for(calibrate, resource_cluster):
    runner = runner_for(address=resource_cluster.address, resources={"Alignment": ALIGNMENT})
    names = _worker_names(resource_cluster)
    algorithms = [scripted(f"Alignment{i}" if i else "Alignment", ("report_identity",), ("results", 1),
                           ("final", "COMPLETED")) for i in range(1)]
    for _ in range(3):  # the scheduler would pick the small worker about half the time without the request
        outcome = calibrate(algorithms, runner=runner)
        assert outcome.final_state == "COMPLETED", outcome.error
        records = _attempt_workers(outcome)
        assert records == [names["large"]], records


def _attempt_workers(outcome):
    from caf_hpc.report import load_records

    return [a["worker"] for r in load_records(outcome.output_dir) for s in r["strategies"] for a in s["attempts"]]


def test_an_algorithm_no_worker_can_run_is_refused_before_anything_is_submitted(calibrate, resource_cluster):
    runner = runner_for(address=resource_cluster.address,
                        resources={"Millepede": {"cores": 8, "memory": "16GB"}})
    outcome = calibrate([ok("First"), ok("Millepede")], runner=runner)
    assert outcome.final_state == "FAILED"
    message = str(outcome.error)
    assert "algorithm Millepede asks for cores=8, memory=16 GB (resources)" in message, message
    assert f"the Dask scheduler at {resource_cluster.address}" in message
    assert "1 worker(s): cores=1, memory=1 GB" in message and "1 worker(s): cores=4, memory=4 GB" in message, message
    assert '--resources "cores=8,memory=16000000000"' in message, message
    assert not (outcome.output_dir / "First_stdout").exists()  # not even the algorithm that fits ran


def test_a_misspelt_algorithm_name_is_refused_with_the_one_it_means(calibrate, resource_cluster):
    runner = runner_for(address=resource_cluster.address, resources={"Milepede": {"cores": 2}})
    outcome = calibrate([ok("Millepede")], runner=runner)
    assert outcome.final_state == "FAILED"
    assert "resources name algorithm 'Milepede', which it does not have; did you mean 'Millepede'?" \
        in str(outcome.error), outcome.error
    assert not (outcome.output_dir / "Millepede_stdout").exists()


def test_a_strategy_past_the_memory_it_asked_for_fails_as_the_algorithm_with_the_figure(calibrate, resource_cluster):
    runner = runner_for(address=resource_cluster.address, retries=2,
                        resources={"Hungry": {"cores": 1, "memory": "200MB"}})
    before = set(_worker_names(resource_cluster).values())
    outcome = calibrate([scripted("Hungry", ("print", "hungry starts"), ("grow", 1000), ("final", "COMPLETED"))],
                        runner=runner)
    assert outcome.final_state == "FAILED"
    message = str(outcome.error)
    assert "The strategy of algorithm Hungry (calibration cal) used " in message, message
    assert "more than the 200 MB it asked for (resources)" in message, message
    assert "failure of the algorithm, not of the cluster" in message and "lost" not in message, message
    log = _log(outcome, "Hungry")
    assert log.count("hungry starts") == 1 and "held" not in log, log  # run once, ended before it held it all
    assert "[caf-hpc] the strategy was ended: it used" in log
    assert set(_worker_names(resource_cluster).values()) == before  # no worker lost


def test_a_strategy_past_its_workers_memory_limit_fails_as_the_algorithm_with_the_figure(calibrate, resource_cluster):
    """Asked for no memory, on the worker whose --memory-limit is 600 MB: held to that less the worker's margin."""
    runner = runner_for(address=resource_cluster.address, resources={"Greedy": {"cores": 4}})
    outcome = calibrate([scripted("Greedy", ("grow", 2000), ("final", "COMPLETED"))], runner=runner)
    assert outcome.final_state == "FAILED"
    message = str(outcome.error)
    assert ("more than the 390 MB its worker gives it (the worker's memory limit 600 MB less 210 MB "
            "kept for the worker's own processes)") in message, message


def test_the_local_default_refuses_what_its_workers_do_not_have_naming_what_they_have(calibrate):
    runner = runner_for(n_workers=1, resources={"Millepede": {"cores": 8}})
    try:
        outcome = calibrate([ok("Millepede")], runner=runner)
        assert outcome.final_state == "FAILED"
        message = str(outcome.error)
        assert "algorithm Millepede asks for cores=8" in message and "the local Dask cluster" in message, message
        assert "1 worker(s): cores=1, memory=" in message, message
        small = runner_for(n_workers=1, resources={"Millepede": {"cores": 1, "memory": "100MB"}})
        assert calibrate([ok("Millepede")], runner=small).final_state == "COMPLETED"
    finally:
        clusters.close(runner.settings())


@pytest.mark.parametrize("given, expected", [
    ({"Millepede": {"memroy": "16GB"}}, "resources.Millepede.memroy: unknown resource; did you mean 'memory'?"),
    ({"Millepede": {"memory": "lots"}}, "resources.Millepede.memory: 'lots' is not an amount of memory"),
    ({"Millepede": {"cores": 0}}, "resources.Millepede.cores: expected a positive number, got 0"),
    ({"Millepede": 8}, "resources.Millepede: expected a mapping such as {cores: 8, memory: 16GB}, got 8"),
    (["Millepede"], "resources: expected a mapping of algorithm names to what each needs"),
])
def test_a_request_that_cannot_mean_anything_is_refused_where_it_is_written(given, expected):
    with pytest.raises(SettingsError) as raised:
        runner_for(resources=given)
    assert expected in str(raised.value) and "runner_for(resources=...)" in str(raised.value)


def test_requests_are_normalised_and_written_as_a_worker_argument():
    settings = resolve(resources={"Millepede": {"cores": 8, "memory": "16GB", "gpus": 1}})
    assert settings.resources == {"Millepede": {"cores": 8.0, "memory": 16e9, "gpus": 1.0}}
    assert resources.worker_argument(settings.resources["Millepede"]) == "cores=8,memory=16000000000,gpus=1"


POOLS = {"alignment": {"cores": 4, "memory": "8GB", "walltime": "08:00:00"}}


def test_a_batch_site_refuses_what_none_of_its_pools_gives_before_any_job_is_submitted(calibrate, isolated_sites):
    """Checked against the site config alone: no cluster is made, so no batch job, and no testbed is needed."""
    runner = runner_for("localhost-slurm", pools=POOLS, resources={"Millepede": {"cores": 8, "memory": "16GB"}})
    outcome = calibrate([ok("Pedestals"), ok("Millepede")], runner=runner)
    assert outcome.final_state == "FAILED"
    message = str(outcome.error)
    assert "calibration cal: algorithm Millepede asks for cores=8, memory=16 GB (resources)" in message, message
    assert ("It has the default pool (cluster): cores=1, memory=1 GB; pool 'alignment' (1 job(s)): cores=4, "
            "memory=8 GB. Add a pool that gives it to site-configs/localhost-slurm.yaml") in message, message
    assert runner.settings().cluster_key not in clusters._clusters  # no cluster, no job
    assert not (outcome.output_dir / "Pedestals_stdout").exists()


def test_a_site_suggests_resources_and_the_script_wins_algorithm_by_algorithm(isolated_sites):
    (isolated_sites / "pooled.yaml").write_text(
        "scheduler: slurm\ncluster: {queue: debug, cores: 1, memory: 1GB}\n"
        "pools: {alignment: {cores: 4, memory: 8GB}}\n"
        "runner: {resources: {Millepede: {cores: 4, memory: 6GB}, Dedx: {memory: 2GB}}}\n")
    settings = runner_for("pooled", resources={"Millepede": {"cores": 2}}).settings()
    assert settings.resources == {"Millepede": {"cores": 2.0}, "Dedx": {"memory": 2e9}}
    plan = resources.plan_run("cal", ["Millepede", "Dedx", "Pedestals"], settings)
    assert plan.submit_options("Millepede") == {"resources": {"cores": 2.0}}
    assert plan.submit_options("Dedx") == {"resources": {"cores": 1.0, "memory": 2e9}}
    assert plan.submit_options("Pedestals") == {"resources": {"cores": 1.0}}  # a core each, on a site with pools
    assert plan.memory_limit("Dedx") == 2_000_000_000 and plan.memory_limit("Millepede") is None
