"""basf2's log_to_file truncates the algorithm's log and writes at its own offset; the child makes it append."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from typing import Any

from caf_hpc.child import process as child

# A strategy process in miniature: fds 1 and 2 on the log (appending, as the worker opens it),
# output before and after CAF's switch of basf2 logging to the same file.
SCRIPT = textwrap.dedent("""
    import logging, os, sys
    from caf_hpc.child import process as child
    from caf_hpc.extras.standins import basf2_logging
    log = sys.argv[1]
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1); os.dup2(fd, 2)
    if sys.argv[2] == "protected":
        child._append_basf2_log()
    os.write(1, b"written before the switch\\n")
    basf2_logging.reset_log()
    basf2_logging.log_to_file(log)
    os.write(2, b"C++ line after the switch, a long one that the next log record would overwrite\\n")
    logging.getLogger("caf").warning("basf2's own line")
    os.write(1, b"last line\\n")
""")


def _run(tmp_path, mode):
    log = tmp_path / f"{mode}_stdout"
    subprocess.run([sys.executable, "-c", SCRIPT, str(log), mode], check=True, timeout=60)
    return log.read_text()


def test_unprotected_basf2_switch_erases_and_overwrites_other_output(tmp_path):
    """The stand-in behaves as basf2 does; this is what the runner must prevent."""
    text = _run(tmp_path, "unprotected")
    assert "written before the switch" not in text
    assert "C++ line after the switch, a long one that the next log record would overwrite" not in text


def test_protected_switch_keeps_every_line_in_order(tmp_path):
    lines = _run(tmp_path, "protected").splitlines()
    assert lines == ["written before the switch",
                     "C++ line after the switch, a long one that the next log record would overwrite",
                     "[WARNING] caf: basf2's own line",
                     "last line"]


def test_real_basf2_is_told_to_append_only_to_the_strategy_log(tmp_path, monkeypatch):
    """Applied to a module named basf2 with basf2's signature: our log appends, other files keep basf2's mode."""
    import os

    calls = []
    fake: Any = types.ModuleType("basf2")
    fake.log_to_file = lambda filename, append=False: calls.append((os.path.basename(filename), append))
    monkeypatch.setitem(sys.modules, "basf2", fake)
    from caf_hpc.extras.standins import basf2_logging

    monkeypatch.setattr(basf2_logging, "log_to_file", basf2_logging.log_to_file)  # wrapped too: restore it after
    stdout_file = tmp_path / "Alg_stdout"
    other = tmp_path / "elsewhere.log"
    other.write_text("")
    saved = os.dup(1)
    fd = os.open(stdout_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.dup2(fd, 1)
        child._append_basf2_log()
        child._append_basf2_log()  # twice: wrapped once
    finally:
        os.dup2(saved, 1)
        os.close(fd)
        os.close(saved)
    fake.log_to_file(str(stdout_file))
    fake.log_to_file(str(other))
    fake.log_to_file(str(tmp_path / "not-there-yet.log"))
    assert calls == [("Alg_stdout", True), ("elsewhere.log", False), ("not-there-yet.log", False)]
