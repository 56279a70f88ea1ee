"""The worker image of the testbed, built with Podman from a checkout's ``Containerfile``.

The context is what ``.containerignore`` lets through of the checkout, plus a wheelhouse
of caf-hpc and everything it needs, so that the build itself needs no package index. The
base is the one ``caf-hpc testbed up podman`` made. The site ``localhost-slurm-podman``
runs every worker in the image this builds.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import TestbedError

IMAGE = "localhost/caf-hpc:testbed"
BASE = "localhost/caf-hpc-base:bookworm"
_FILES = ("pyproject.toml", "README.md", "Containerfile", ".containerignore")
_TREES = ("caf_hpc", "site-configs")


def stage(checkout: Path, context: Path, timeout: float = 280) -> Path:
    """Copies the build context out of ``checkout`` into ``context`` and adds the wheelhouse."""
    context.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        shutil.copy2(checkout / name, context / name)
    for name in _TREES:
        shutil.copytree(checkout / name, context / name, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    wheels = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir",
                             str(context / ".wheelhouse"), str(context)], capture_output=True, text=True,
                            timeout=timeout)
    if wheels.returncode != 0:
        raise TestbedError(f"pip wheel for the image failed:\n{wheels.stderr[-3000:]}")
    return context


def build(context: Path, tag: str = IMAGE, timeout: float = 280, env: dict | None = None) -> tuple[float, str]:
    """Builds ``tag`` from a staged ``context``; returns the seconds it took and Podman's output."""
    started = time.monotonic()
    done = subprocess.run(["podman", "build", "--build-arg", f"BASE_IMAGE={BASE}", "--build-arg",
                           "WHEELHOUSE=.wheelhouse", "-t", tag, "-f", "Containerfile", "."], cwd=context,
                          capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ))
    if done.returncode != 0:
        raise TestbedError(f"podman build of {tag} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.monotonic() - started, done.stdout + done.stderr
