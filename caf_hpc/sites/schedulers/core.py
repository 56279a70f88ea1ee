"""What every scheduler shares, and what each one's module fills in (``Scheduler``).

As in dask-jobqueue (``core.py`` with ``Job`` and ``JobQueueCluster``, then ``slurm.py``,
``pbs.py``, ... each a short subclass), a scheduler is one object in one module of this
package: its dask-jobqueue cluster class, the keys it requires and the kinds of those that
are its own, its walltime format, its dry submission, its job-state query and the
environment variables that carry a job's id. The rest of ``caf_hpc.sites`` asks the
object and never names a scheduler.

Every command here runs in a session of its own: a Ctrl-C at the terminal is the steering
process's to handle, and must not make a submission that would pass look refused, nor a
query fail.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from .. import schema

#: Seconds a dry submission may take.
TIMEOUT = 30.0

#: A value kind: the name of a kind every site key shares (``count``, ``memory``, ... see ``validate``), or a
#: scheduler's own check, ``value -> (the value normalised, what is wrong or None)``.
Kind = str | Callable[[Any], tuple]


@dataclass(frozen=True)
class DryRun:
    """What the dry submission did: ``ok`` is None when there was nothing to run."""

    ok: bool | None
    summary: str
    output: str = ""


@dataclass(frozen=True)
class Walltime:
    """How a scheduler writes a time limit: the pattern it accepts, in words, and an example."""

    pattern: re.Pattern
    formats: str
    example: str


def clock_seconds(text: str) -> float | None:
    """Seconds of ``[[H:]M:]S`` (``01:30:00``, ``90:00``, ``5400``); None when ``text`` is not of that form."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return float(seconds)


def run_command(command: Sequence[str], timeout: float = TIMEOUT) -> tuple:
    """``(exit code or None, stdout and stderr)`` of a command that must not hang nor see Ctrl-C."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout:g} s"
    except OSError as err:
        return None, str(err)
    return done.returncode, (done.stdout + done.stderr).strip()


def query(command: Sequence[str], timeout: float) -> str:
    """The output of a job-state query; raises ``OSError``/``SubprocessError`` when it cannot run."""
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                          start_new_session=True).stdout


def trial(command: Sequence[str]) -> DryRun:
    """Runs a dry submission whose last word is the script; says who accepted or refused it."""
    code, output = run_command(command)
    shown = " ".join(os.path.basename(word) if i == 0 else word for i, word in enumerate(command[:-1]))
    if code == 0:
        return DryRun(True, f"{shown} accepted the job", output)
    return DryRun(False, f"{shown} refused the job" + (f" (exit code {code})" if code is not None else ""), output)


class Scheduler:
    """One batch system (or the local default): subclassed once in each module of this package.

    A module ``NAME.py`` here defines ``SCHEDULER``, an instance whose ``name`` is ``NAME``: that
    is all the registry (``schedulers/__init__.py``) needs to offer ``scheduler: NAME`` in site
    configs.
    """

    #: What a site config's ``scheduler:`` says; also the module's name and its ``jobqueue.yaml`` section.
    name: ClassVar[str] = ""
    #: Its name in messages ("Grid Engine").
    title: ClassVar[str] = ""
    #: Where it is listed in messages and lookups (lower first): the local default, then by how common it is.
    rank: ClassVar[int] = 100
    #: Whether it submits batch jobs (TLS, scale, containers and job scripts apply), or runs workers here.
    is_batch: ClassVar[bool] = True
    #: The name of dask-jobqueue's cluster class in ``dask_jobqueue``.
    cluster_class_name: ClassVar[str] = ""
    #: Keys every site of it must set: dask-jobqueue cannot size a job without them.
    required_keys: ClassVar[tuple] = ("cores", "memory")
    #: How its ``walltime`` is written; None when it has no such key.
    walltime: ClassVar[Walltime | None] = None
    #: Value kinds of its own keys, or its own meaning of a shared key.
    cluster_kinds: ClassVar[dict] = {}
    #: dask-jobqueue renamed ``project`` to ``account`` for it.
    project_is_account: ClassVar[bool] = False
    #: Environment variables in which its jobs find their own id (the first one set names the job).
    job_id_variables: ClassVar[tuple] = ()
    #: dask-jobqueue takes ``submit_command_extra``/``cancel_command_extra`` itself (caf-hpc adds them otherwise).
    native_command_extras: ClassVar[bool] = False
    #: Its job-state codes that mean waiting in the queue, and running; any other is "other".
    pending_states: ClassVar[frozenset] = frozenset()
    running_states: ClassVar[frozenset] = frozenset()
    #: Runner settings its ``cluster`` keys of the same names suggest (the user's own win over them).
    settings_keys: ClassVar[tuple] = ()
    #: Sections of a site config that mean nothing for it, and why.
    unused_sections: ClassVar[dict] = {}

    def __repr__(self) -> str:
        return f"<scheduler {self.name}>"

    # -- keys and values ------------------------------------------------------------------------

    def defaults(self) -> dict:
        """dask-jobqueue's own defaults for its ``cluster`` keys (its section of ``jobqueue.yaml``)."""
        return schema.jobqueue_defaults(self.name)

    def cluster_class(self) -> Any:
        """dask-jobqueue's cluster class (imports dask-jobqueue)."""
        return getattr(schema.jobqueue(), self.cluster_class_name)

    def cluster_keys(self) -> tuple:
        """The ``cluster`` keys a site of this scheduler may set, sorted."""
        return _cluster_keys(self)

    def cluster_kind(self, key: str) -> Kind:
        """The value kind of ``cluster.<key>``."""
        return self.cluster_kinds.get(key) or schema.default_kind(self.name, key)

    def job_arguments(self, kwargs: dict) -> dict:
        """The cluster class's keyword arguments, as this scheduler's job class wants them."""
        return kwargs

    def walltime_seconds(self, value: Any) -> float | None:
        """The site's ``cluster.walltime`` in seconds, read as this batch system reads it; None when it has
        none, or none that ends (Slurm's ``UNLIMITED``). Validation has checked ``value`` against ``walltime``."""
        return None

    # -- inside a job ---------------------------------------------------------------------------

    def job_time_left(self, environ: Mapping[str, str], timeout: float = 10) -> float | None:
        """Seconds the batch job this process runs in has left, as the batch system itself says (asked from
        inside the job: its environment, or a query naming its id); None when it cannot say. The worker's
        own estimate (``caf_hpc.worker.walltime``) fills in where it cannot."""
        return None

    # -- submitting -----------------------------------------------------------------------------

    def wrong_program(self, found: str) -> str | None:
        """Why the submit command found on ``PATH`` (``found``) belongs to another batch system, or None."""
        return None

    def submit_problem(self, submit_command: str) -> str | None:
        """Why jobs could not go to this batch system from this machine, or None."""
        program = shlex.split(submit_command)[0]
        found = shutil.which(program)
        if not found:
            return f"{program} not found on PATH: this machine cannot submit {self.name} jobs"
        return self.wrong_program(found)

    def dry_submit(self, script: str, submit_command: str, name: str = "job") -> DryRun:
        """Asks the batch system, where its commands are on this machine, whether it would accept ``script``
        handed to ``submit_command``, without submitting it."""
        if not self.is_batch:
            return DryRun(None, "nothing to submit: the local cluster runs worker processes on this machine")
        words = shlex.split(submit_command)
        found = shutil.which(words[0])
        if not found:
            return DryRun(None, f"{words[0]} not found on PATH: no dry submission")
        wrong = self.wrong_program(found)
        if wrong:
            return DryRun(False, wrong)
        with tempfile.TemporaryDirectory(prefix="caf-hpc-check-") as directory:
            path = os.path.join(directory, f"{name}.job")
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(script)
            return self.dry_run([found, *words[1:]], path, directory)

    def dry_run(self, words: list, path: str, directory: str) -> DryRun:
        """Asks the batch system whether it would take the script at ``path``; ``words`` is the submit
        command, its program found on ``PATH``; ``directory`` holds ``path`` and may take more files."""
        return DryRun(None, f"{self.title} has no dry submission; {os.path.basename(words[0])} found at {words[0]}")

    # -- jobs -----------------------------------------------------------------------------------

    def query_states(self, ids: Sequence[str], timeout: float) -> dict | None:
        """``{job id: the batch system's state code}`` for the jobs it still lists; None if it cannot be asked."""
        return None

    def job_states(self, ids: Sequence[Any], timeout: float = 10) -> dict | None:
        """``{job id: "pending" | "running" | "other"}`` for the jobs the batch system still lists;
        None when it cannot be asked (no query for it, a command missing or failing)."""
        if not ids:
            return None
        try:
            states = self.query_states([str(i) for i in ids], timeout)
        except (OSError, subprocess.SubprocessError, ValueError):  # a command missing, failing, or misread
            return None
        if states is None:
            return None
        wanted = {str(i) for i in ids}
        return {job: "pending" if state in self.pending_states else "running" if state in self.running_states
                else "other" for job, state in states.items() if job in wanted}

    def jobs_summary(self, ids: Sequence[Any]) -> str:
        """'3 batch job(s) submitted (ids): 2 pending, 1 running', as far as the batch system says."""
        text = f"{len(ids)} batch job(s) submitted ({', '.join(map(str, ids)) or 'none yet'})"
        states = self.job_states(ids)
        if states is None:
            return text
        counts = {kind: sum(1 for s in states.values() if s == kind) for kind in ("pending", "running", "other")}
        gone = len(ids) - len(states)
        parts = [f"{n} {kind}" for kind, n in counts.items() if n] + ([f"{gone} no longer queued"] if gone else [])
        return f"{text}: {', '.join(parts)}"


@cache
def _cluster_keys(scheduler: Scheduler) -> tuple:
    names = schema.job_class_keys(scheduler.cluster_class().job_cls, scheduler.name)
    if scheduler.project_is_account:
        names.discard("project")
    return tuple(sorted(names))
