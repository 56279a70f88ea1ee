"""The testbed's Slurm (and Podman, for workers in the container) for the suite's batch figures.

The suite starts what is not running yet when it may (as root, with apt-get: the
testbed installs Debian packages) and stops only what it started. The jobs run with a
home and a working directory of the suite's own, so that their TLS files, job logs and
Slurm output land there and go with it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from caf_hpc.extras import testbed
from caf_hpc.extras.testbed import image

from . import CHECKOUT


class Unavailable(Exception):
    """The batch figures cannot be measured here; the message says why and how to get them."""


def _may_start() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


@contextlib.contextmanager
def testbeds(names: tuple, home: Path) -> Iterator[dict]:
    """The environment for submitting to testbeds ``names``, set in this process while inside."""
    started = []
    saved, cwd = dict(os.environ), os.getcwd()
    try:
        for name in names:
            if not testbed.is_up(name):
                if not _may_start():
                    raise Unavailable(f"the {name} testbed is down; start it with `caf-hpc testbed up {name}` "
                                      "(as root)")
                print(f"starting the {name} testbed (caf-hpc testbed up {name}) ...", flush=True)
                testbed.up(name)
                started.append(name)
        environment = {key: value for name in names for key, value in testbed.environment(name).items()}
        home.mkdir(parents=True, exist_ok=True)
        os.environ.update(environment, HOME=str(home))
        os.chdir(home)
        yield environment
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)
        for name in reversed(started):
            testbed.down(name)


def worker_image(context: Path) -> str | None:
    """Builds the worker image from this checkout (Podman's cache makes a rebuild take seconds)."""
    seconds, _ = image.build(image.stage(CHECKOUT, context))
    print(f"worker image {image.IMAGE} built in {seconds:.0f} s", flush=True)
    return image.IMAGE
