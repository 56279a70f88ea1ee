"""Asking the batch system whether it would accept a site's job, without submitting it.

* Slurm: ``sbatch --test-only``.
* Grid Engine: ``qsub -w v`` (verify only) -- once ``qsub -help`` shows it is Grid Engine's.
* PBS: PBS has no dry run; when ``qsub`` is slurm-wlm-torque's wrapper (an ``sbatch``
  beside it), ``sbatch --test-only`` reads the script's ``#PBS`` lines instead. A
  Grid Engine ``qsub`` first on ``PATH`` is reported, since jobs would go there.
* HTCondor: ``condor_submit -dry-run``.
* LSF: no dry run; only whether ``bsub`` is there.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Optional, Sequence

from .config import SiteConfig

TIMEOUT = 30.0


@dataclass(frozen=True)
class DryRun:
    """What the dry submission did: ``ok`` is None when there was nothing to run."""

    ok: Optional[bool]
    summary: str
    output: str = ""


def _run(command: Sequence[str]) -> tuple:
    try:
        # in a session of its own: a Ctrl-C at the terminal is the steering process's to handle, and must
        # not make a submission that would pass look refused
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=TIMEOUT,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, f"no answer within {TIMEOUT:g} s"
    except OSError as err:
        return None, str(err)
    return done.returncode, (done.stdout + done.stderr).strip()


def grid_engine_version(qsub: str) -> Optional[str]:
    """``"SGE 8.1.9"`` when ``qsub`` is Grid Engine's (its ``-help`` starts with the version), else None."""
    _, output = _run([qsub, "-help"])
    first = output.splitlines()[0] if output else ""
    return first if any(word in first for word in ("GE ", "Grid Engine", "OGS")) else None


def _torque_sbatch(qsub: str) -> Optional[str]:
    """The ``sbatch`` beside ``qsub`` when ``qsub`` is slurm-wlm-torque's Perl wrapper (``use Slurm``)."""
    try:
        with open(os.path.realpath(qsub), "rb") as stream:
            if b"Slurm" not in stream.read(1 << 16):
                return None
    except OSError:
        return None
    for directory in (os.path.dirname(qsub), os.path.dirname(os.path.realpath(qsub))):
        sbatch = os.path.join(directory, "sbatch")
        if os.access(sbatch, os.X_OK):
            return sbatch
    return shutil.which("sbatch")


def _submit(command: list) -> DryRun:
    code, output = _run(command)
    shown = " ".join(os.path.basename(word) if i == 0 else word for i, word in enumerate(command[:-1]))
    if code == 0:
        return DryRun(True, f"{shown} accepted the job", output)
    return DryRun(False, f"{shown} refused the job" + (f" (exit code {code})" if code is not None else ""), output)


def wrong_qsub(site: SiteConfig, qsub: str) -> Optional[str]:
    """Why ``qsub`` belongs to the wrong batch system for ``site`` (PBS and Grid Engine share the name)."""
    if site.scheduler not in ("pbs", "sge") or os.path.basename(qsub) != "qsub":
        return None
    version = grid_engine_version(qsub)
    if site.scheduler == "pbs" and version:
        return (f"the qsub on PATH ({qsub}) is Grid Engine's ({version}), not PBS's; put the PBS commands first "
                "on PATH (for this machine's testbed: eval \"$(caf-hpc testbed env pbs)\")")
    if site.scheduler == "sge" and not version:
        return f"the qsub on PATH ({qsub}) is not Grid Engine's; jobs would go elsewhere"
    return None


def submit_problem(site: SiteConfig, submit_command: str) -> Optional[str]:
    """Why jobs could not go to ``site``'s batch system from this machine, or None."""
    program = shlex.split(submit_command)[0]
    found = shutil.which(program)
    if not found:
        return f"{program} not found on PATH: this machine cannot submit {site.scheduler} jobs"
    return wrong_qsub(site, found)


def dry_submit(site: SiteConfig, script: str, submit_command: str) -> DryRun:
    """Runs the scheduler's dry submission of ``script`` where one exists on this machine."""
    if not site.is_batch:
        return DryRun(None, "nothing to submit: the local cluster runs worker processes on this machine")
    with tempfile.TemporaryDirectory(prefix="caf-hpc-check-") as directory:
        path = os.path.join(directory, f"{site.name}.job")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(script)
        return _dry_submit(site, shlex.split(submit_command), path, directory)


def _dry_submit(site: SiteConfig, words: list, path: str, directory: str) -> DryRun:
    found = shutil.which(words[0])
    if not found:
        return DryRun(None, f"{words[0]} not found on PATH: no dry submission")
    wrong = wrong_qsub(site, found)
    if wrong:
        return DryRun(False, wrong)
    words = [found, *words[1:]]
    if site.scheduler == "slurm":
        return _submit([*words, "--test-only", path])
    if site.scheduler == "sge":
        run = _submit([*words, "-w", "v", path])
        if not run.ok and "found suitable queue" in run.output:  # some versions exit 1 even then
            return DryRun(True, "qsub -w v accepted the job", run.output)
        return run
    if site.scheduler == "pbs":
        sbatch = _torque_sbatch(found)
        if not sbatch:
            return DryRun(None, f"PBS has no dry submission; qsub found at {found}")
        run = _submit([sbatch, "--test-only", path])
        return DryRun(run.ok, f"{run.summary} (qsub is slurm-wlm-torque's wrapper over Slurm)", run.output)
    if site.scheduler == "htcondor":
        return _submit([*words, "-dry-run", os.path.join(directory, "ads"), path])
    return DryRun(None, f"LSF has no dry submission; bsub found at {found}")
