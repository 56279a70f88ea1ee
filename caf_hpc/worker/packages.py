"""What a worker's Python environment needs, and the rest of it removed: the worker image's diet.

caf-hpc depends on Bokeh (the report's page and Dask's dashboard) and rich (the demo's
live table); a worker draws neither: without Bokeh distributed only skips the worker's
own diagnostics page (a debug message). Bokeh brings numpy and Pillow, together about
two thirds of the installed packages' size. The ``Containerfile`` therefore installs
caf-hpc as usual and then runs

    python -m caf_hpc.worker.packages --leave-out bokeh,rich --extras "$EXTRAS" --remove

which removes from the environment's own site-packages every distribution that
caf-hpc (with those extras) does not need once the left-out ones are gone, keeping pip
so that an image built on this one can still install a calibration's own package.
Computed from the installed packages' metadata, so it follows caf-hpc's dependencies
as they change. A ``--system-site-packages`` environment's base packages (basf2's
numpy, ROOT) are never touched.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

#: Kept whatever caf-hpc needs: the installer, for images built on this one.
ALWAYS_KEPT = ("pip",)


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def needed(root: str = "caf-hpc", extras: tuple = (), leave_out: tuple = ()) -> set[str]:
    """Canonical names of the installed distributions ``root[extras]`` requires, directly or not, without
    following ``leave_out`` (nor what only they require)."""
    left_out = {canonical(name) for name in leave_out}
    kept: set[str] = set()
    todo = [(root, set(extras))]
    while todo:
        name, wanted_extras = todo.pop()
        key = canonical(name)
        if key in kept or key in left_out:
            continue
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # an optional requirement not installed (or not for this platform)
        kept.add(key)
        for text in requirements:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in (wanted_extras or {""})):
                todo.append((requirement.name, set(requirement.extras)))
    return kept


def removable(site_packages: Path, keep: set[str]) -> list[metadata.Distribution]:
    """The distributions installed in ``site_packages`` itself that are not in ``keep``."""
    found = metadata.distributions(path=[str(site_packages)])
    return sorted((d for d in found if canonical(d.metadata["Name"]) not in keep | set(ALWAYS_KEPT)),
                  key=lambda d: canonical(d.metadata["Name"]))


def remove(distribution: metadata.Distribution) -> None:
    """Deletes a distribution's files (its RECORD), their bytecode and the directories they leave empty."""
    directories = set()
    for file in distribution.files or []:
        path = Path(str(distribution.locate_file(file)))  # a SimplePath to typing, a Path here
        if path.is_file() or path.is_symlink():
            path.unlink()
        directories.add(path.parent)
    for directory in directories:  # bytecode that Python wrote beside the files, not in RECORD
        shutil.rmtree(directory / "__pycache__", ignore_errors=True)
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        while directory.is_dir() and not any(directory.iterdir()) and directory.name != "site-packages":
            directory.rmdir()
            directory = directory.parent


def _names(text: str) -> tuple:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m caf_hpc.worker.packages",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--leave-out", default="", help="comma-separated distributions a worker does not need")
    parser.add_argument("--extras", default="", help="caf-hpc extras installed, comma-separated (e.g. root)")
    parser.add_argument("--remove", action="store_true", help="remove them (default: only list them)")
    args = parser.parse_args(argv)
    keep = needed(extras=_names(args.extras), leave_out=_names(args.leave_out))
    if "caf-hpc" not in keep:
        print("caf-hpc is not installed in this environment", file=sys.stderr)
        return 2
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for distribution in removable(site_packages, keep):
        print(f"{'removing' if args.remove else 'not needed:'} {distribution.metadata['Name']} "
              f"{distribution.version}")
        if args.remove:
            remove(distribution)
    return 0


if __name__ == "__main__":
    sys.exit(main())
