"""How the runner reads one strategy's records and events, attempt by attempt (no cluster needed)."""
from __future__ import annotations

from caf_hpc import protocol
from caf_hpc.extras.standins.utils import IoV, IoV_Result
from caf_hpc.steering import events
from caf_hpc.steering.runner import StrategyStream

KEY = "caf-strategy-A-1"


def _where(worker):
    return protocol.Where("node", 1, worker)


def _frames(attempt, worker, *messages):
    return protocol.Frames(KEY, attempt, _where(worker), (protocol.dumps(list(messages)),))


def _result(run):
    return protocol.Result(IoV_Result(IoV(1, run, 1, run), 0))


def test_records_of_another_strategy_are_ignored():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(protocol.Frames("caf-strategy-Z-9", "x", _where("w1"), (protocol.dumps([_result(1)]),)))
    assert stream.results == [] and stream.attempt is None


def test_a_lost_attempts_end_does_not_end_the_next_attempt():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1), protocol.FinalState("COMPLETED")))
    stream.consume(protocol.Ended(KEY, "a1", _where("w1"), returncode=0))
    stream.consume(events.WorkerLost(KEY, "w1"))          # lost before the scheduler heard the task end
    stream.consume(events.TaskDone(KEY, "finished"))        # the re-run's task ended; its records still on the way
    assert not stream.finished and stream.end is None and stream.results == []
    stream.consume(_frames("a2", "w2", _result(7), protocol.FinalState("COMPLETED")))
    stream.consume(protocol.Ended(KEY, "a2", _where("w2"), returncode=0))
    assert stream.finished and [r.iov.run_low for r in stream.results] == [7] and stream.end.attempt == "a2"
    assert len(stream.lost) == 1


def test_a_record_sent_before_its_worker_was_lost_is_not_a_second_loss():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(events.WorkerLost(KEY, "w1"))            # the loss arrives first, directly
    stream.consume(_frames("a1", "w1", _result(1)))         # then the dead worker's last record, from the queue
    stream.consume(_frames("a2", "w2", _result(2), protocol.FinalState("COMPLETED")))
    stream.consume(_frames("a1", "w1", _result(3)))         # and one more of it, late
    assert len(stream.lost) == 1 and stream.attempt == "a2"
    assert [r.iov.run_low for r in stream.results] == [2] and stream.final_state == "COMPLETED"


def test_the_same_loss_told_twice_counts_once():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.consume(events.WorkerLost(KEY, "w1"))
    stream.consume(events.WorkerLost(KEY, "w1"))
    assert len(stream.lost) == 1 and stream.results == []


def test_a_killed_worker_from_dask_is_the_loss_it_names_counted_once():
    """Dask's KilledWorker can arrive before the scheduler's remove-worker event: the runner counts it as that loss."""
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.consume(events.TaskDone(KEY, "error", "KilledWorker(...)", lost_worker="w1"))
    stream.consume(events.WorkerLost(KEY, "w1"))
    assert len(stream.lost) == 1
    assert stream.results == [] and stream.finished
