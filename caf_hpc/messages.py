"""What travels from a strategy to the runner, and how.

Three hops: the strategy's ``queue.put(message)`` in the child process becomes a
length-prefixed pickle frame on a pipe; the Dask worker batches the frames it has read
into one record of a ``distributed.Queue`` (which carries only msgpack-able data, hence
pickled bytes inside); the runner unpickles them, so an ``IoV_Result`` arrives as an
``IoV_Result``. Nothing here imports Dask: the child process imports this module.
"""
from __future__ import annotations

import os
import pickle
import struct
from typing import Any

RESULT = "result"
FINAL_STATE = "final_state"
FINAL_STATES = ("COMPLETED", "FAILED")

# Frame kinds on the child's pipe (not CAF message types).
MESSAGE = "message"
EXCEPTION = "exception"

# Record kinds in the Dask queue.
START = "start"
FRAMES = "frames"
END = "end"
TASK_DONE = "task-done"
LOST = "lost"

_HEADER = struct.Struct("!Q")


class ProtocolError(ValueError):
    """A strategy sent something CAF's protocol does not allow."""


def check_message(message: Any, final_state_sent: bool) -> None:
    """Raises ProtocolError unless ``message`` is a CAF strategy message allowed now."""
    if not isinstance(message, dict) or "type" not in message or "value" not in message:
        raise ProtocolError(f"a strategy message must be a dict with 'type' and 'value', got {message!r}")
    if final_state_sent:
        raise ProtocolError(f"message {message['type']!r} sent after the final state; the final state must come last")
    kind, value = message["type"], message["value"]
    if kind == RESULT:
        if not (hasattr(value, "iov") and hasattr(value, "result")):
            raise ProtocolError(f"a 'result' message carries an IoV_Result(iov, result), got {value!r}")
    elif kind == FINAL_STATE:
        if value not in FINAL_STATES:
            raise ProtocolError(f"final state must be one of {', '.join(FINAL_STATES)}, got {value!r}")
    else:
        raise ProtocolError(f"unknown message type {kind!r}: allowed are {RESULT!r} and {FINAL_STATE!r}")


def dumps(obj: Any) -> bytes:
    """Pickles with the standard library; cloudpickle only for what it cannot (classes made in a script)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exactly(fd: int, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            raise EOFError(f"pipe closed with {remaining} of {size} bytes unread")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes:
    (size,) = _HEADER.unpack(read_exactly(fd, _HEADER.size))
    return read_exactly(fd, size)


class FrameBuffer:
    """Splits a byte stream into complete frames, keeping a partial one for later."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames, offset, end = [], 0, len(self._buffer)
        while end - offset >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer, offset)
            if end - offset - _HEADER.size < size:
                break
            start = offset + _HEADER.size
            frames.append(bytes(self._buffer[start:start + size]))
            offset = start + size
        del self._buffer[:offset]
        return frames
