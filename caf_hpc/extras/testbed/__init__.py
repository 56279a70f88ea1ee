"""Real single-node batch systems on this machine, for tests and laptop trials.

caf-hpc talks to batch systems through dask-jobqueue, which shells out to
``sbatch``/``qsub``/...; mocks of those commands would not catch what goes
wrong on a real cluster (directives a scheduler rejects, job ids that do not
parse, workers that never start).  So the tests, and a user who wants to try
caf-hpc before going to a real site, run the real thing: Slurm, the PBS
commands of Debian's ``slurm-wlm-torque`` over that Slurm, and Son of Grid
Engine; and Podman with a local base image, for workers in containers.  The work is done
by the bash scripts beside this file (usable on their own: ``bash slurm.sh up|down|status|env``);
this module only runs them.

Starting a system installs Debian packages and starts daemons as root, so it
is never done implicitly: call :func:`up` (or ``caf-hpc testbed up NAME``).
State lives under ``$CAF_HPC_TESTBED_DIR`` (default
``/var/tmp/caf-hpc-testbed``); Slurm's daemons listen on
``$CAF_HPC_TESTBED_SLURMCTLD_PORT`` and ``$CAF_HPC_TESTBED_SLURMD_PORT`` (default
6817 and 6818), and ``up`` says in one line what else holds them, if anything does.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

__all__ = ["NAMES", "TestbedError", "up", "down", "is_up", "environment", "script"]

#: The systems this module can start: batch systems (``pbs`` runs over ``slurm``), and
#: ``podman`` for worker containers (no daemon; the runtime and a local base image).
NAMES = ("slurm", "pbs", "sge", "podman")

_HERE = Path(__file__).resolve().parent
_STATUS_DOWN = 3  # the scripts' `status` exit code when the system is down
_TAIL_LINES = 30


class TestbedError(RuntimeError):
    """A testbed script failed or timed out; the message ends with its stderr tail."""

    __test__ = False  # not a pytest test class, despite the name


def script(name: str) -> Path:
    """Path of the bash script behind ``name`` (for running it by hand)."""
    if name not in NAMES:
        raise ValueError(f"unknown testbed {name!r}; expected one of {', '.join(NAMES)}")
    return _HERE / f"{name}.sh"


def _tail(text: str) -> str:
    lines = text.strip().splitlines()[-_TAIL_LINES:]
    return "\n".join(lines) if lines else "(no output on stderr)"


def _run(name: str, action: str, timeout: float) -> subprocess.CompletedProcess[str]:
    path = script(name)
    try:
        return subprocess.run(
            ["bash", str(path), action],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise TestbedError(
            f"`bash {path} {action}` did not finish within {timeout:g} s "
            f"(daemons it started may still run: `bash {path} down`)\n{_tail(stderr)}"
        ) from None
    except OSError as exc:  # no bash at all
        raise TestbedError(f"cannot run `bash {path} {action}`: {exc}") from exc


#: The scripts' ``die``/``log "ERROR: ..."`` line: ``[slurm 12:00:00] ERROR: what went wrong``.
_ERROR = re.compile(r"^\[\S+ [0-9:]+\] ERROR: (.*)$")


def _check(name: str, action: str, proc: subprocess.CompletedProcess[str]) -> None:
    """A failed script's error leads with its cause (the script's last ERROR line), then its path and
    exit code; the tail of its output follows only when there is more than that line to read."""
    if proc.returncode == 0:
        return
    lines = proc.stderr.strip().splitlines()
    causes = [(i, match.group(1)) for i, line in enumerate(lines) if (match := _ERROR.match(line))]
    if not causes:
        raise TestbedError(f"`bash {script(name)} {action}` failed with exit code {proc.returncode}\n"
                           f"{_tail(proc.stderr)}")
    last, cause = causes[-1]
    rest = [line for i, line in enumerate(lines) if i != last and not line.startswith(f"[{name} ")]
    detail = f"\n{_tail(chr(10).join(lines))}" if rest else ""
    raise TestbedError(f"{name} {action}: {cause} (`bash {script(name)} {action}`, exit code "
                       f"{proc.returncode}){detail}")


def up(name: str, timeout: float = 300) -> None:
    """Start ``name`` (installing its packages if needed) and return once a job has run.

    Returns at once if it is already up.  ``timeout`` bounds the whole call,
    package installation included (about 20 s from nothing here; CI machines
    with slow mirrors may need more).
    """
    _check(name, "up", _run(name, "up", timeout))


def down(name: str, timeout: float = 120) -> None:
    """Cancel the system's jobs and stop the daemons its ``up`` started.

    Safe to call when it is already down.
    """
    _check(name, "down", _run(name, "down", timeout))


def is_up(name: str, timeout: float = 60) -> bool:
    """Whether ``name`` is up and answering (its daemons run and respond)."""
    proc = _run(name, "status", timeout)
    if proc.returncode == _STATUS_DOWN:
        return False
    _check(name, "status", proc)
    return True


_EXPORT = re.compile(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def environment(name: str, timeout: float = 60) -> dict[str, str]:
    """Environment variables a process needs to submit to ``name``.

    Parsed from the script's ``env`` output (``export KEY=VALUE`` lines, in
    shell quoting).  ``$VAR`` references in a value (``PATH=dir:$PATH``) are
    expanded from this process's environment, overlaid with the variables
    already read; merge the result into ``os.environ`` or pass it as the
    ``env`` of a subprocess.
    """
    proc = _run(name, "env", timeout)
    _check(name, "env", proc)
    env: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        match = _EXPORT.match(line.strip())
        if not match:
            continue
        key, raw = match.groups()
        words = shlex.split(raw)
        value = words[0] if words else ""
        env[key] = _expand(value, {**os.environ, **env})
    return env


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand(value: str, scope: dict[str, str]) -> str:
    return _VAR.sub(lambda m: scope.get(m.group(1) or m.group(2), ""), value)
