"""A stand-in basf2 release for collector jobs: ``$BELLE2_TOOLS/b2setup`` and a ``basf2`` command.

CAF's collector job runs ``basf2 run_collector_path.py --job-information job_info.json``
in an empty environment, after the ``setup_cmds`` that ``Job.append_current_basf2_setup_cmds``
made from ``BELLE2_TOOLS`` and ``BELLE2_RELEASE`` (``source $BELLE2_TOOLS/b2setup <release>``).
``make_tools`` writes such a tools directory: its ``b2setup`` puts a ``basf2`` command on
``PATH`` that runs a steering file with this Python (or, in the worker image, the image's
own), as basf2 runs one, so that a collector job runs here exactly as it would under basf2.
"""
from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RELEASE = "standin"
#: Interpreters the ``basf2`` command tries, in order: this one, then the worker image's.
_IMAGE_PYTHON = "/opt/caf-hpc/bin/python3"


def make_tools(directory: str | os.PathLike) -> Path:
    """Writes ``b2setup`` and ``bin/basf2`` into ``directory``; returns it, to be ``BELLE2_TOOLS``."""
    tools = Path(directory).absolute()
    (tools / "bin").mkdir(parents=True, exist_ok=True)
    candidates = " ".join(shlex.quote(p) for p in (sys.executable, _IMAGE_PYTHON))
    basf2 = tools / "bin" / "basf2"
    basf2.write_text(
        "#!/bin/bash\n"
        "# basf2 stand-in: runs a steering file as basf2 does (see caf_hpc.extras.standins.basf2_command)\n"
        f"for python in {candidates} python3; do\n"
        "    if command -v \"$python\" >/dev/null && \"$python\" -c 'import caf_hpc' 2>/dev/null; then\n"
        "        exec \"$python\" -m caf_hpc.extras.standins.basf2_command \"$@\"\n"
        "    fi\n"
        "done\n"
        "echo 'basf2 stand-in: no Python with caf_hpc found' >&2\n"
        "exit 127\n")
    basf2.chmod(0o755)
    (tools / "b2setup").write_text(
        "# b2setup stand-in: sourced by a collector job's setup_cmds\n"
        f"export PATH={shlex.quote(str(tools / 'bin'))}:\"${{PATH:-/usr/local/bin:/usr/bin:/bin}}\"\n"
        f"export BELLE2_RELEASE=\"${{1:-{RELEASE}}}\"\n"
        f"export BELLE2_TOOLS={shlex.quote(str(tools))}\n")
    return tools


def environment(tools: str | os.PathLike) -> dict:
    """The variables a basf2 setup leaves in the steering process, which CAF turns into ``setup_cmds``."""
    return {"BELLE2_TOOLS": str(Path(tools).absolute()), "BELLE2_RELEASE": RELEASE}


@contextmanager
def set_up(tools: str | os.PathLike) -> Iterator[Path]:
    """The release of ``tools`` set up in this process as a basf2 setup leaves it (CAF reads it into a
    collector job's ``setup_cmds``), for as long as the block runs; the environment as it was afterwards."""
    variables = environment(tools)
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield Path(tools)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

