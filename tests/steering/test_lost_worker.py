"""A worker lost mid-strategy: re-run elsewhere within the retries, else an infrastructure error."""
from __future__ import annotations

import time

import pytest

from caf_hpc import DaskAlgorithmsRunner, SettingsError, runner_for
from caf_hpc.basf2_compat import RunnerError
from caf_hpc.extras.standins.utils import IoV, IoV_Result
from caf_hpc.steering import clusters
from tests.helpers.own_cluster import OwnCluster
from tests.helpers.queues import new_queues_left, scheduler_queues
from tests.helpers.scripted import ok, scripted


def _losing(tmp_path):
    return scripted("Unlucky", ("results", 3), ("signal_worker_once", str(tmp_path / "killed"), "SIGKILL"),
                    ("results", 2), ("final", "COMPLETED"))


def _wait_for_workers(count, seconds=60):
    """The nanny restarts a killed worker; later tests want the cluster whole again."""
    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    client.wait_for_workers(count, timeout=seconds)


def test_lost_worker_reruns_the_strategy_and_drops_the_lost_results(calibrate, tmp_path):
    before = set(scheduler_queues())
    outcome = calibrate([_losing(tmp_path)], runner=runner_for(retries=1))
    assert outcome.final_state == "COMPLETED", outcome.error
    assert outcome.results["Unlucky"] == [IoV_Result(IoV(1, i, 1, i), 0) for i in range(3)] + \
        [IoV_Result(IoV(1, i, 1, i), 0) for i in range(2)]
    assert new_queues_left(before, seconds=20) == []  # also the reference the killed worker held
    _wait_for_workers(2)


def test_lost_worker_without_retries_is_an_infrastructure_error(calibrate, tmp_path):
    before = set(scheduler_queues())
    started = time.monotonic()
    outcome = calibrate([_losing(tmp_path), scripted("After", ("final", "COMPLETED"))], runner=runner_for(retries=0))
    assert isinstance(outcome.error, RunnerError)
    message = str(outcome.error)
    assert "lost its worker 1 time(s)" in message and "more than retries=0 allows" in message
    assert "failure of the cluster, not of the algorithm" in message and "worker tcp://127.0.0.1:" in message
    assert list(outcome.results) == ["Unlucky"]
    assert time.monotonic() - started < 60  # at once, not after a time-to-live (300 s by default)
    assert new_queues_left(before, seconds=20) == []
    _wait_for_workers(2)


def _lost_times(tmp_path, times):
    """A strategy whose worker is killed on each of its first ``times`` attempts (the nanny starts it again)."""
    return scripted("Unlucky", ("results", 3), ("signal_worker_times", str(tmp_path / "attempts"), times, "SIGKILL"),
                    ("results", 2), ("final", "COMPLETED"))


@pytest.mark.timeout(300)
def test_retries_above_dasks_own_limit_are_the_runners_to_count(calibrate, tmp_path):
    """retries=4, four workers lost: the fifth attempt completes. Dask's own allowed-failures (3 by default)
    ended it at the fourth loss with a KilledWorker."""
    outcome = calibrate([_lost_times(tmp_path, 4)], runner=runner_for(retries=4))
    assert outcome.final_state == "COMPLETED", outcome.error
    assert (tmp_path / "attempts").read_text() == "5"
    assert outcome.results["Unlucky"] == [IoV_Result(IoV(1, i, 1, i), 0) for i in range(3)] + \
        [IoV_Result(IoV(1, i, 1, i), 0) for i in range(2)]
    _wait_for_workers(2)


@pytest.mark.timeout(300)
def test_one_loss_more_than_retries_is_the_runners_own_error_never_a_killed_worker(calibrate, tmp_path):
    outcome = calibrate([_lost_times(tmp_path, 5)], runner=runner_for(retries=4))
    assert isinstance(outcome.error, RunnerError), outcome.error
    message = str(outcome.error)
    assert "lost its worker 5 time(s)" in message and "more than retries=4 allows" in message, message
    assert "KilledWorker" not in message and "failure of the cluster, not of the algorithm" in message
    assert (tmp_path / "attempts").read_text() == "5"  # no sixth attempt
    _wait_for_workers(2)


@pytest.mark.timeout(180)
def test_retries_above_the_limit_of_a_scheduler_given_by_address_are_refused(calibrate, tmp_path):
    """A scheduler caf-hpc only connects to keeps its own limit: a larger retries is refused before anything runs,
    and at the limit the runner's message is its own even when Dask's KilledWorker comes first."""
    cluster = OwnCluster(tmp_path, scheduler_environment={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    try:
        cluster.add_worker()
        cluster.add_worker()
        refused = calibrate([ok("Never")], runner=runner_for(address=cluster.address, retries=2), root=tmp_path / "a")
        assert isinstance(refused.error, SettingsError), refused.error
        message = str(refused.error)
        assert f"retries=2 is more than the Dask scheduler at {cluster.address} allows" in message, message
        assert "distributed.scheduler.allowed-failures=1" in message and "Give retries=1 or less" in message
        assert "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=2" in message and refused.results == {}

        lost = calibrate([_lost_times(tmp_path, 2)], runner=runner_for(address=cluster.address, retries=1),
                         root=tmp_path / "b")
        message = str(lost.error)
        assert "lost its worker 2 time(s)" in message and "more than retries=1 allows" in message, message
        assert "KilledWorker" not in message
    finally:
        cluster.close()


@pytest.mark.timeout(120)
def test_a_strategy_that_ended_is_never_run_again_when_its_worker_goes_later(calibrate, tmp_path):
    """Dask recomputes a finished task whose worker is lost while a client still holds its future. The
    runner's RunnerError, kept by CAF (or a driver) after the run, carried the run's frames, and with them
    the strategy's future: a strategy that had failed ran a second time when its worker went, minutes later."""
    from tests.helpers.scripted import scripted

    cluster = OwnCluster(tmp_path)
    try:
        first = cluster.add_worker()
        runs = tmp_path / "runs"
        outcome = calibrate([scripted("Once", ("record", str(runs), "ran"), ("raise", "boom"))],
                            runner=runner_for(address=cluster.address), root=tmp_path / "a")
        assert "boom" in str(outcome.error) and runs.read_text() == "ran\n"
        cluster.add_worker()
        first.kill()
        first.wait(timeout=10)
        time.sleep(3)  # a recomputation would start at once on the second worker
        assert runs.read_text() == "ran\n", "the strategy ran again after its run had ended"
        assert outcome.error is not None  # still held, as CAF holds it
    finally:
        cluster.close()


@pytest.mark.timeout(120)
def test_a_strategy_that_ended_is_not_run_again_while_the_runs_release_is_on_its_way(calibrate, tmp_path):
    """The run lets its futures go as it ends; until the scheduler has that message, Dask still computes a
    finished task again when the worker holding its result is lost. Here the futures are held on, as that
    message still on its way would: Dask computes the strategy's task again, but the strategy does not run."""
    from caf_hpc import DaskAlgorithmsRunner
    from tests.helpers.scripted import scripted

    kept: list = []

    class Holding(DaskAlgorithmsRunner):
        def _run_strategy(self, *args, **kwargs):
            try:
                return super()._run_strategy(*args, **kwargs)
            finally:
                kept.append(self._tasks[-1])

    cluster = OwnCluster(tmp_path)
    try:
        first = cluster.add_worker()
        Holding.overrides = {"address": cluster.address}
        runs = tmp_path / "runs"
        outcome = calibrate([scripted("Once", ("record", str(runs), "ran"), ("results", 1), ("final", "COMPLETED"))],
                            runner=Holding, root=tmp_path / "a")
        assert outcome.final_state == "COMPLETED", outcome.error
        (held_by,) = _holders(kept[0])
        cluster.add_worker()
        first.kill()
        first.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _holders(kept[0]) in (set(), {held_by}) and runs.read_text() == "ran\n":  # until computed again
            assert time.monotonic() < deadline, "Dask did not compute the task again"
            time.sleep(0.1)
        assert runs.read_text() == "ran\n", "the strategy ran again after its run had ended"
    finally:
        kept.clear()
        cluster.close()


def _holders(future) -> set:
    """The workers holding the task's result."""
    key = future.key
    return set(future.client.run_on_scheduler(
        lambda dask_scheduler: [ws.address for ws in dask_scheduler.tasks[key].who_has or ()]
        if key in dask_scheduler.tasks else []))


@pytest.mark.timeout(120)
def test_the_end_is_taken_even_when_the_worker_holding_it_is_lost_first(calibrate, tmp_path, monkeypatch):
    """The end is the task's return value, held by its worker. That worker lost after the task ended and before
    the runner took the end: Dask computes the task again elsewhere, which returns the first end without
    running the strategy, and the run completes with the results it streamed."""
    import asyncio

    from caf_hpc.steering import runner as runner_module

    cluster = OwnCluster(tmp_path)
    killed: list = []
    take_end = runner_module.take_end

    async def losing_the_holder_first(inbox, key, future, client):
        while not future.done():
            await asyncio.sleep(0.01)
        cluster.add_worker()
        first.kill()
        first.wait(timeout=10)
        killed.append(first.pid)
        await take_end(inbox, key, future, client)

    monkeypatch.setattr(runner_module, "take_end", losing_the_holder_first)
    try:
        first = cluster.add_worker()
        runs = tmp_path / "runs"
        outcome = calibrate([scripted("Once", ("record", str(runs), "ran"), ("results", 3), ("final", "COMPLETED"))],
                            runner=runner_for(address=cluster.address), root=tmp_path / "a")
        assert killed, "the runner took no end"
        assert outcome.final_state == "COMPLETED", outcome.error
        assert outcome.results["Once"] == [IoV_Result(IoV(1, i, 1, i), 0) for i in range(3)]
        assert runs.read_text() == "ran\n", "the strategy ran again"
    finally:
        cluster.close()


def test_an_end_lost_with_the_last_worker_is_a_wait_for_a_worker_bounded_by_worker_wait(calibrate, tmp_path,
                                                                                         monkeypatch):
    """The task finished, and its worker (the only one) was lost before the runner took the end: computing it
    again needs a worker, and none comes. The runner no longer takes the finished attempt for a running one
    (it waited for ever, seen on Slurm when a strategy's job was cancelled just as it ended): the wait is for a
    worker, and ``worker_wait`` bounds it."""
    import asyncio

    from caf_hpc.steering import runner as runner_module

    cluster = OwnCluster(tmp_path)
    take_end = runner_module.take_end

    async def losing_the_holder_first(inbox, key, future, client):
        while not future.done():
            await asyncio.sleep(0.01)
        only.kill()
        only.wait(timeout=10)
        await take_end(inbox, key, future, client)

    monkeypatch.setattr(runner_module, "take_end", losing_the_holder_first)
    try:
        only = cluster.add_worker()
        started = time.monotonic()
        # its results stream while it runs (so its attempt is known to have started), then it ends
        outcome = calibrate([scripted("Once", ("results", 3), ("sleep", 1), ("final", "COMPLETED"))],
                            runner=runner_for(address=cluster.address, worker_wait=3), root=tmp_path / "a")
        assert outcome.final_state == "FAILED"
        assert "found no worker to run it within 3 s (worker_wait)" in str(outcome.error), outcome.error
        assert time.monotonic() - started < 30
    finally:
        cluster.close()
