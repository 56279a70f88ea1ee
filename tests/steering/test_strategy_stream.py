"""How the runner reads one strategy's records and events, attempt by attempt (no cluster needed)."""
from __future__ import annotations

from caf_hpc import protocol
from caf_hpc.extras.standins.utils import IoV, IoV_Result
from caf_hpc.steering.runner import StrategyStream, TaskDone
from caf_hpc.steering.worker_events import WorkerLost

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


def _end(attempt, worker, records):
    return protocol.Ended(KEY, attempt, _where(worker), returncode=0, records=records)


def test_the_end_waits_for_every_record_it_counts():
    """The task's end can come before the last records it put (they travel through the scheduler's queue):
    the stream is finished only when it has them all, and has them in order."""
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.ended(TaskDone(KEY, "finished"), _end("a1", "w1", 3))
    assert not stream.finished and stream.missing == 2
    stream.consume(_frames("a1", "w1", _result(2)))
    assert not stream.finished and stream.missing == 1
    stream.consume(_frames("a1", "w1", _result(3), protocol.FinalState("COMPLETED")))
    assert stream.finished and stream.final_state == "COMPLETED"
    assert [r.iov.run_low for r in stream.results] == [1, 2, 3]


def test_the_frames_an_end_carries_are_read_after_every_record_it_counts():
    stream = StrategyStream(KEY, "A", [])
    last = (protocol.dumps([_result(3), protocol.FinalState("COMPLETED")]),)
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.ended(TaskDone(KEY, "finished"), protocol.Ended(KEY, "a1", _where("w1"), returncode=0, records=2,
                                                          frames=last))
    assert not stream.finished and stream.final_state is None and len(stream.results) == 1
    stream.consume(_frames("a1", "w1", _result(2)))
    assert stream.finished and stream.final_state == "COMPLETED"
    assert [r.iov.run_low for r in stream.results] == [1, 2, 3]


def test_an_end_that_carries_all_its_frames_is_its_attempts_start_and_end():
    stream = StrategyStream(KEY, "A", [])
    last = (protocol.dumps([_result(1), protocol.FinalState("COMPLETED")]),)
    stream.ended(TaskDone(KEY, "finished"), protocol.Ended(KEY, "a1", _where("w1"), returncode=0, frames=last))
    assert stream.finished and stream.attempt == "a1" and stream.final_state == "COMPLETED"
    assert [r.iov.run_low for r in stream.results] == [1]


def test_the_frames_of_an_end_from_a_lost_attempt_are_dropped():
    """A worker lost after the end but before the scheduler heard of it: the end (the mark's, returned by a
    second computation) carries the lost attempt's frames; they do not count as results."""
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.consume(WorkerLost(KEY, "w1"))
    last = (protocol.dumps([_result(2), protocol.FinalState("COMPLETED")]),)
    stream.ended(TaskDone(KEY, "finished"), protocol.Ended(KEY, "a1", _where("w1"), returncode=0, records=1,
                                                          frames=last))
    assert stream.finished and stream.results == [] and stream.final_state is None and "a1" in stream.given_up


def test_an_end_that_put_nothing_is_its_attempts_start_and_end():
    stream = StrategyStream(KEY, "A", [])
    stream.ended(TaskDone(KEY, "finished"), protocol.Ended(KEY, "a1", _where("w1"), unstartable="no log"))
    assert stream.finished and stream.attempt == "a1" and stream.where.worker == "w1"


def test_a_task_that_returned_no_end_is_finished_at_once():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.ended(TaskDone(KEY, "error", "RuntimeError('x')"), None)
    assert stream.finished and stream.end is None


def test_a_lost_attempts_records_do_not_end_the_next_attempt():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1), protocol.FinalState("COMPLETED")))
    stream.consume(WorkerLost(KEY, "w1"))                   # lost before the scheduler heard the task end
    assert stream.results == [] and stream.final_state is None
    stream.ended(TaskDone(KEY, "finished"), _end("a2", "w2", 1))  # the re-run's end; its record still on the way
    assert not stream.finished and stream.results == []
    stream.consume(_frames("a2", "w2", _result(7), protocol.FinalState("COMPLETED")))
    assert stream.finished and [r.iov.run_low for r in stream.results] == [7] and stream.end.attempt == "a2"
    assert len(stream.lost) == 1


def test_a_record_sent_before_its_worker_was_lost_is_not_a_second_loss():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(WorkerLost(KEY, "w1"))            # the loss arrives first, directly
    stream.consume(_frames("a1", "w1", _result(1)))         # then the dead worker's last record, from the queue
    stream.consume(_frames("a2", "w2", _result(2), protocol.FinalState("COMPLETED")))
    stream.consume(_frames("a1", "w1", _result(3)))         # and one more of it, late
    assert len(stream.lost) == 1 and stream.attempt == "a2"
    assert [r.iov.run_low for r in stream.results] == [2] and stream.final_state == "COMPLETED"


def test_the_same_loss_told_twice_counts_once():
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.consume(WorkerLost(KEY, "w1"))
    stream.consume(WorkerLost(KEY, "w1"))
    assert len(stream.lost) == 1 and stream.results == []


def test_a_killed_worker_from_dask_is_the_loss_it_names_counted_once():
    """Dask's KilledWorker can arrive before the scheduler's remove-worker event: the runner counts it as that loss."""
    stream = StrategyStream(KEY, "A", [])
    stream.consume(_frames("a1", "w1", _result(1)))
    stream.ended(TaskDone(KEY, "error", "KilledWorker(...)", lost_worker="w1"), None)
    stream.consume(WorkerLost(KEY, "w1"))
    assert len(stream.lost) == 1
    assert stream.results == [] and stream.finished
