"""Walltime-aware placement: the decisions, the expected durations from run records, the settings."""
from __future__ import annotations

import time

import pytest
from distributed import Client, LocalCluster

from caf_hpc import dask_adapter
from caf_hpc.steering import placement
from caf_hpc.steering.placement import Worker, choose
from caf_hpc.steering.progress import RunProgress
from caf_hpc.steering.settings import SettingsError, resolve
from caf_hpc.worker.walltime import METADATA_KEY

NOW = 1_000_000.0


def _workers(**left):
    """Workers named by keyword, each with that many seconds left (None: unknown); ``busy_`` prefix: busy."""
    return [Worker(name.removeprefix("busy_"), None if s is None else NOW + s, 1 if name.startswith("busy_") else 0)
            for name, s in left.items()]


def test_a_known_duration_starts_only_where_it_fits_with_the_margin():
    decision = choose(_workers(a=100, b=500, c=700), NOW, expected=300, margin=60)
    assert decision.workers == ["c", "b"]  # 500 > 300 + 60; a would be cut


def test_when_no_worker_has_time_enough_none_is_chosen_so_the_strategy_waits():
    assert choose(_workers(a=100, b=200), NOW, expected=300, margin=60).workers == []


def test_an_unknown_duration_goes_to_the_idle_worker_with_the_most_time_left():
    assert choose(_workers(busy_a=900, b=500, c=700), NOW, expected=None, margin=60).workers == ["c"]
    assert choose(_workers(busy_a=900, busy_b=500), NOW, expected=None, margin=60).workers == ["a"]


def test_collector_jobs_of_unknown_duration_spread_over_every_worker_not_near_its_end():
    decision = choose(_workers(a=30, b=500, busy_c=700), NOW, expected=None, margin=60, many=True)
    assert decision.workers == ["c", "b"]


def test_a_worker_within_its_margin_is_never_chosen():
    assert choose(_workers(a=50), NOW, expected=None, margin=60).workers == []
    assert choose(_workers(a=50), NOW, expected=1, margin=60).workers == []


def test_without_any_known_end_nothing_is_restricted():
    assert choose(_workers(a=None, b=None), NOW, expected=10, margin=60).workers is None
    assert placement.submit_options(None) == {}
    assert placement.submit_options(["a"]) == {"workers": ["a"], "allow_other_workers": True}


def test_a_worker_of_unknown_end_among_known_ones_counts_as_unlimited():
    assert choose(_workers(a=100, b=None), NOW, expected=300, margin=60).workers == ["b"]


def test_the_default_margin_is_five_percent_of_the_walltime_within_bounds():
    assert placement.default_margin(60) == 10
    assert placement.default_margin(3600) == 180
    assert placement.default_margin(48 * 3600) == 300


def _record(output_dir, **runs):
    """A run record as the runner writes it: per algorithm, attempts that ran so many seconds (None: lost)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    progress = RunProgress("cal", 0, output_dir, "test")
    for algorithm, seconds_list in runs.items():
        strategy = progress.strategy(algorithm, "key", output_dir / "log")
        for seconds in seconds_list:
            if seconds is None:
                strategy.lost_unseen("tcp://gone:1")
                continue
            start = time.time()
            strategy.entry["attempts"].append({"outcome": "ended", "started": start - seconds, "finished": start})
    progress.finish("COMPLETED")


def test_expected_duration_is_the_longest_earlier_run_in_any_iteration(tmp_path):
    _record(tmp_path / "cal" / "0" / "algorithm_output", Align=[40.0, None])
    _record(tmp_path / "cal" / "1" / "algorithm_output", Align=[55.0], Other=[900.0])
    here = tmp_path / "cal" / "2" / "algorithm_output"
    here.mkdir(parents=True)
    settings = resolve(expected_durations={"Align": 3600, "New": 120})
    assert placement.expected_duration(settings, here, "Align") == pytest.approx(55.0, abs=0.5)
    assert placement.expected_duration(settings, here, "New") == 120  # no record yet: the hint
    assert placement.expected_duration(resolve(), here, "New") is None  # unknown


def test_expected_durations_are_checked_where_they_are_given():
    with pytest.raises(SettingsError, match=r"expected_durations: Align: expected a positive number of seconds"):
        resolve(expected_durations={"Align": "an hour"})
    with pytest.raises(SettingsError, match="expected a mapping of algorithm names to seconds"):
        resolve(expected_durations=[3600])
    with pytest.raises(SettingsError, match="walltime_margin must be a positive number of seconds"):
        resolve(walltime_margin=-1)


@pytest.mark.timeout(60)
def test_placement_reads_each_workers_end_from_the_scheduler():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        first, second = sorted(client.scheduler_info()["workers"])
        client.sync(client.scheduler.set_metadata, keys=[METADATA_KEY, first], value={"end": NOW})
        view = dask_adapter.running_workers(client, METADATA_KEY)
        assert view == {first: ({"end": NOW}, 0), second: (None, 0)}


def test_a_placed_task_that_asks_for_resources_goes_where_both_allow_and_never_waits_where_neither_does(tmp_path):
    """The placement's choice (the idle worker with the most time left: here the small one) and an algorithm's
    resources (only the large one gives them) have no worker in common. Dask would then drop every restriction,
    resources included, and could send the task to the small worker, where it waits for ever for cores it
    does not have; the placement gives way to the resources instead."""
    from tests.helpers.own_cluster import OwnCluster

    cluster = OwnCluster(tmp_path)
    try:
        cluster.add_worker("--resources", "cores=1", "--name", "small")
        cluster.add_worker("--resources", "cores=4", "--name", "large", "--nthreads", "4")
        with Client(cluster.address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            names = {info["name"]: address for address, info in client.scheduler_info(n_workers=-1)["workers"].items()}
            placed = placement.submit_options([names["small"]])
            options = placement.with_resources(client, placed, {"resources": {"cores": 4}})
            assert options == {"resources": {"cores": 4}}
            for _ in range(5):
                future = client.submit(lambda: __import__("distributed").get_worker().name, pure=False, **options)
                assert future.result(timeout=30) == "large"
            both = placement.submit_options([names["small"], names["large"]])
            assert placement.with_resources(client, both, {"resources": {"cores": 4}}) == \
                {"resources": {"cores": 4}, "workers": [names["large"]], "allow_other_workers": True}
            assert placement.with_resources(client, both, {}) == both
            assert placement.with_resources(client, {}, {"workers": [names["large"]]}) == {"workers": [names["large"]]}
    finally:
        cluster.close()
