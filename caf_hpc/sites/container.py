"""Running the Dask worker inside a container: the command that wraps ``python -m distributed.cli.dask_worker``.

dask-jobqueue starts each worker as ``<python> -m distributed.cli.dask_worker ...``
and inserts ``python`` verbatim, so the container command goes there:

* Apptainer / Singularity: ``apptainer exec --bind DIR ... --env NAME=value ... <options> IMAGE python``
* Podman: ``podman run --rm --network host -v DIR:DIR ... -e NAME=value ... -e SLURM_JOB_ID ... <options> IMAGE python``

Besides the site's own ``binds``, the directories a worker must see are bound at the
same path: the TLS directory, the batch log directory, the worker's local directory,
the directory the cluster was started from (CAF's output directory is relative to it)
and any directory the caller names (the calibration's output and input directories).
``$VARIABLES`` in binds, env and options are left for the job's shell to expand.
"""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Sequence

from .schedulers import JOB_ID_VARIABLES

#: Tokens the job shell may see unquoted: shlex's safe characters plus ``$``, ``{`` and ``}``.
_SHELL_SAFE = re.compile(r"[\w@%+=:,./${}-]+")
#: Python inside the image unless the site sets ``cluster.python``.
DEFAULT_PYTHON = "python"


def shell_word(token: str) -> str:
    """``token`` quoted for the job script, leaving ``$VARIABLES`` to expand there."""
    token = str(token)
    return token if _SHELL_SAFE.fullmatch(token) else shlex.quote(token)


def _bind_source(bind: str) -> str:
    return bind.split(":", 1)[0]


def bind_list(container: dict, directories: Iterable[str | None]) -> list:
    """The site's binds (``~`` expanded), then each automatic directory not bound yet, at the same path."""
    binds = [os.path.expanduser(str(bind)) for bind in container.get("binds") or []]
    seen = {_bind_source(bind).rstrip("/") for bind in binds}
    for directory in directories:
        if not directory or "$" in str(directory):
            continue  # a path known only on the worker node is the site's to bind
        path = os.path.abspath(os.path.expanduser(str(directory))).rstrip("/") or "/"
        if path not in seen:
            seen.add(path)
            binds.append(path)
    return binds


def container_command(container: dict, python: str | None, directories: Sequence[str | None] = ()) -> str:
    """The ``python`` value for dask-jobqueue: the container runtime's command ending in the image's Python."""
    runtime = container["runtime"]
    binds = bind_list(container, directories)
    env = list(container.get("env") or [])
    if runtime == "podman":
        words = ["podman", "run", "--rm", "--network", "host"]
        for bind in binds:
            words += ["-v", bind if ":" in bind else f"{bind}:{bind}"]
        for item in env:
            words += ["-e", item]
        for name in JOB_ID_VARIABLES:  # passed on when set (Podman starts from a clean environment): the
            words += ["-e", name]      # runner's messages name the batch job a worker runs in
    else:
        words = [runtime, "exec"]
        for bind in binds:
            words += ["--bind", bind]
        for item in env:
            words += ["--env", item]
    words += list(container.get("options") or [])
    words.append(os.path.expanduser(str(container["image"])) if runtime != "podman" else str(container["image"]))
    return " ".join(shell_word(word) for word in words) + " " + (python or DEFAULT_PYTHON)
