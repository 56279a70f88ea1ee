"""Results stream through Dask queues: as they come, in order, once, on queues of their own."""
from __future__ import annotations

import logging
import threading
import time

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.utils import IoV, IoV_Result
from caf_hpc.steering import clusters
from tests.helpers.queues import new_queues_left, scheduler_queues
from tests.helpers.scripted import ok, scripted


def test_a_thousand_results_arrive_in_order_exactly_once(calibrate):
    outcome = calibrate([ok("Many", 1000)])
    assert outcome.final_state == "COMPLETED", outcome.error
    assert outcome.results["Many"] == [IoV_Result(IoV(1, i, 1, i), 0) for i in range(1000)]


def test_results_are_visible_to_another_thread_while_the_strategy_runs(calibrate, tmp_path):
    release = tmp_path / "release"
    seen = {}
    runners = []

    class Watched(DaskAlgorithmsRunner):
        def __init__(self, name):
            super().__init__(name)
            runners.append(self)

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            results = runners[0].results.get("Streaming", []) if runners else []
            if len(results) >= 2:
                seen["during"] = list(results)
                release.touch()  # only now may the strategy go on and finish
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcome = calibrate([scripted("Streaming", ("results", 2), ("wait_for_file", str(release), 60),
                                  ("results", 1), ("final", "COMPLETED"))], runner=Watched)
    watcher.join(timeout=60)
    assert seen["during"] == [IoV_Result(IoV(1, i, 1, i), 0) for i in range(2)]
    assert len(outcome.results["Streaming"]) == 3


def test_the_runs_queue_is_removed_afterwards_also_after_a_failure(calibrate):
    before = set(scheduler_queues())  # other tests' queues may still be on their way out
    outcome = calibrate([ok("One"), ok("Two"), scripted("Three", ("raise", "boom"))])
    assert outcome.final_state == "FAILED"
    assert new_queues_left(before) == []


def _flood_scheduler_log(dask_scheduler=None):
    import logging

    for i in range(5000):  # about 0.6 MB: ten times what a pipe holds
        logging.getLogger("distributed.scheduler").warning("flood %05d %s", i, "x" * 80)
    return True


def test_scheduler_output_is_drained_so_a_chatty_scheduler_never_blocks(calibrate, caplog):
    caplog.set_level(logging.WARNING, logger="caf_hpc")
    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    assert client.run_on_scheduler(_flood_scheduler_log)
    outcome = calibrate([ok("AfterTheFlood")])
    assert outcome.final_state == "COMPLETED", outcome.error
    deadline = time.monotonic() + 30
    while not any("flood 04999" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any("Dask scheduler:" in r.getMessage() and "flood 04999" in r.getMessage() for r in caplog.records)


def test_a_strategy_quiet_for_longer_than_a_queue_read_leaves_no_scheduler_error(calibrate, caplog):
    """The runner's read of its queue waits at the scheduler; a read that timed out there was logged by the
    scheduler as an ERROR with its traceback, every 10 s of a quiet strategy, on the user's terminal."""
    with caplog.at_level(logging.WARNING, logger="caf_hpc"):
        outcome = calibrate([ok("Quiet", 1, ("sleep", 12))])
    assert outcome.final_state == "COMPLETED", outcome.error
    assert "queue_get" not in caplog.text and "Dask scheduler" not in caplog.text
