"""What crosses a process boundary: frames on the child's pipe, records on the run's queue, CAF's rules."""
from __future__ import annotations

import os
import pickle
import threading

import pytest

from caf_hpc import protocol
from caf_hpc.child.process import PipeQueue
from caf_hpc.extras.standins.utils import IoV, IoV_Result


def _stream(*payloads: bytes) -> bytes:
    return b"".join(protocol.frame(p) for p in payloads)


def test_frames_split_at_every_byte_come_out_whole_and_in_order():
    payloads = [b"", b"a", b"\x00" * 9, pickle.dumps(list(range(50)))]
    data = _stream(*payloads)
    for cut in range(len(data) + 1):
        buffer = protocol.FrameBuffer()
        assert buffer.feed(data[:cut]) + buffer.feed(data[cut:]) == payloads, cut
        assert buffer.pending == 0


def test_frames_fed_one_byte_at_a_time_come_out_whole():
    payloads = [b"first", b"second frame", b""]
    buffer, out = protocol.FrameBuffer(), []
    for byte in _stream(*payloads):
        out += buffer.feed(bytes([byte]))
    assert out == payloads


def test_a_partial_frame_is_kept_until_the_rest_arrives():
    data = protocol.frame(b"0123456789")
    buffer = protocol.FrameBuffer()
    assert buffer.feed(data[:5]) == [] and buffer.pending == 5   # within the header
    assert buffer.feed(data[5:12]) == [] and buffer.pending == 12  # within the payload
    assert buffer.feed(data[12:]) == [b"0123456789"] and buffer.pending == 0


def test_a_huge_frame_crosses_a_pipe_whole():
    payload = os.urandom(64 << 20)  # far beyond a pipe's 64 KiB buffer
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=protocol.write_all, args=(write_fd, protocol.frame(payload)))
    writer.start()
    try:
        assert protocol.read_frame(read_fd) == payload
    finally:
        writer.join(timeout=60)
        os.close(read_fd)
        os.close(write_fd)


def test_read_frame_names_a_pipe_closed_mid_frame():
    read_fd, write_fd = os.pipe()
    os.write(write_fd, protocol.frame(b"0123456789")[:12])
    os.close(write_fd)
    with pytest.raises(EOFError, match="pipe closed with 6 of 10 bytes unread"):
        protocol.read_frame(read_fd)
    os.close(read_fd)


@pytest.mark.parametrize("message, sent_final, expected", [
    ("result", False, "must be a dict with 'type' and 'value'"),
    ({"type": "result", "value": (1, 0)}, False, "carries an IoV_Result(iov, result)"),
    ({"type": "final_state", "value": "DONE"}, False, "final state must be one of COMPLETED, FAILED"),
    ({"type": "progress", "value": 1}, False, "unknown message type 'progress'"),
    ({"type": "final_state", "value": "COMPLETED"}, True, "sent after the final state"),
])
def test_cafs_message_rules_name_what_is_wrong(message, sent_final, expected):
    with pytest.raises(protocol.ProtocolError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        protocol.check_message(message, sent_final)


def test_records_keep_their_type_across_the_queue():
    where = protocol.Where("node1", 42, "tcp://10.0.0.1:4000", "1234")
    for record in (protocol.Started("k", "a", where), protocol.Frames("k", "a", where, (b"x",))):
        assert protocol.from_wire(protocol.to_wire(record)) == record
    assert where.label() == "host node1, worker tcp://10.0.0.1:4000, batch job 1234"


def test_a_strategy_task_is_built_by_keyword_only():
    with pytest.raises(TypeError):
        # ten fields: too many to get right by position (the type checker refuses it too: this is the check)
        protocol.StrategyTask("k", "A", b"", "q", "log", "out")  # type: ignore[call-arg]
    task = protocol.StrategyTask(key="k", algorithm_name="A", payload=b"", queue_name="q", log_path="log",
                                 output_dir="out")
    assert task.timeout is None and task.fork_server and task.input_files == ()


def _sent(read_fd: int) -> list:
    buffer = protocol.FrameBuffer()
    messages: list = []
    while True:
        data = os.read(read_fd, 1 << 20)
        if not data:
            return messages
        messages += [m for f in buffer.feed(data) if f != protocol.ENDING for m in protocol.loads(f)]


def _frames(read_fd: int) -> list:
    """The frames on the pipe until it closes, each an ``ENDING`` or the names of the messages in it."""
    buffer = protocol.FrameBuffer()
    frames: list = []
    while True:
        data = os.read(read_fd, 1 << 20)
        if not data:
            return frames
        frames += [f if f == protocol.ENDING else [type(m).__name__ for m in protocol.loads(f)]
                   for f in buffer.feed(data)]


def test_child_queue_follows_the_messages_after_which_the_end_comes_with_an_ending_frame_and_closes():
    """The worker holds what follows an ENDING frame for the strategy's end; ``close`` ends the pipe once
    everything is written, so that the worker sees the end before the process's exit."""
    read_fd, write_fd = os.pipe()
    queue = PipeQueue(write_fd)
    queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), 0)})
    queue.flush()
    queue.put({"type": "final_state", "value": "COMPLETED"})
    queue.close()  # the pipe's only write end: the reader sees its end
    frames = _frames(read_fd)
    os.close(read_fd)
    assert frames == [["Result"], ["FinalState"], protocol.ENDING]
    with pytest.raises(BrokenPipeError):
        queue.report_exception("too late")


def test_child_queue_sends_checked_messages_in_order_and_the_final_state_at_once():
    read_fd, write_fd = os.pipe()
    queue = PipeQueue(write_fd)
    for run in range(1000):
        queue.put({"type": "result", "value": IoV_Result(IoV(1, run, 1, run), 0)})
    queue.put({"type": "final_state", "value": "COMPLETED"})  # returns once all is written
    os.close(write_fd)
    messages = _sent(read_fd)
    os.close(read_fd)
    assert [m.value.iov.run_low for m in messages[:-1]] == list(range(1000))
    assert messages[-1] == protocol.FinalState("COMPLETED")


def test_child_queue_reports_a_violation_and_raises_it_to_the_strategy():
    read_fd, write_fd = os.pipe()
    queue = PipeQueue(write_fd)
    with pytest.raises(protocol.ProtocolError):
        queue.put({"type": "progress", "value": 1})
    os.close(write_fd)
    assert _sent(read_fd) == [protocol.Violation("unknown message type 'progress': allowed are 'result' and "
                                                 "'final_state'")]
    os.close(read_fd)


def test_child_queue_does_not_hang_a_strategy_whose_worker_stopped_reading():
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    queue = PipeQueue(write_fd)
    queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), 0)})
    queue.flush()  # returns: the sender met a broken pipe
    with pytest.raises(BrokenPipeError, match="stopped reading"):
        queue.put({"type": "final_state", "value": "COMPLETED"})
    os.close(write_fd)
