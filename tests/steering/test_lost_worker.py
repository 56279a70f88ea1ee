"""A worker lost mid-strategy: re-run elsewhere within the retries, else an infrastructure error."""
from __future__ import annotations

import time

from tests.helpers.scripted import scripted
from tests.helpers.queues import new_queues_left, scheduler_queues

from caf_hpc import DaskAlgorithmsRunner, runner_for

from caf_hpc.steering import clusters
from caf_hpc.basf2_compat import RunnerError
from caf_hpc.extras.standins.utils import IoV, IoV_Result


def _losing(tmp_path):
    return scripted("Unlucky", ("results", 3), ("signal_worker_once", str(tmp_path / "killed"), "SIGKILL"), ("results", 2),
                    ("final", "COMPLETED"))


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
