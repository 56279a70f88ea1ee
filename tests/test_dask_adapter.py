"""The logging filter of ``dask_adapter``: benign tracebacks about a scheduler that went away stay off the terminal."""
from __future__ import annotations

import io
import logging

from distributed.comm.core import CommClosedError

from caf_hpc import dask_adapter


def _logged(error: Exception, level: int, message: str, *args) -> str:
    """What ``distributed.batched`` prints for ``message`` logged with ``error``'s traceback."""
    dask_adapter.quiet_benign_errors()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("distributed.batched")
    logger.addHandler(handler)
    try:
        try:
            raise error
        except Exception:
            logger.log(level, message, *args, exc_info=True)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_batched_comm_closed_keeps_its_line_without_the_traceback():
    text = _logged(CommClosedError(), logging.INFO, "Batched Comm Closed %r", "<TCP (closed) Client->Scheduler>")
    assert text == "Batched Comm Closed '<TCP (closed) Client->Scheduler>'\n"


def test_other_tracebacks_of_that_logger_stay():
    text = _logged(ValueError("real"), logging.ERROR, "something failed")
    assert text.startswith("something failed\nTraceback") and "ValueError: real" in text
