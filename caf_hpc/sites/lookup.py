"""Finding a site config by name: the package's own, the user's, then ``CAF_HPC_SITE_PATH``.

The first directory that has ``NAME.yaml`` (or ``NAME.yml``) wins, in this order:

1. ``site-configs/`` shipped inside the package (``caf_hpc/site-configs``),
2. the user's ``$XDG_CONFIG_HOME/caf-hpc/sites/`` (``~/.config/caf-hpc/sites/``),
3. each directory of ``CAF_HPC_SITE_PATH`` (separated by ``:``), left to right.

Anything that looks like a path (has a ``/`` or ends in ``.yaml``/``.yml``) is used as
the file itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import checks
from .errors import SiteConfigError

SITE_PATH_VARIABLE = "CAF_HPC_SITE_PATH"
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SiteFile:
    """One site config file found on the search path."""

    name: str
    path: Path
    origin: str  # "package", "user" or "CAF_HPC_SITE_PATH"
    shadowed_by: Path | None = None


def package_directory() -> Path:
    """``caf_hpc/site-configs``: a link to the checkout's ``site-configs/``, a real directory once installed."""
    return Path(__file__).resolve().parent.parent / "site-configs"


def user_directory() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "caf-hpc" / "sites"


def search_path() -> list:
    """``(origin, directory)`` pairs in lookup order."""
    directories = [("package", package_directory()), ("user", user_directory())]
    for entry in os.environ.get(SITE_PATH_VARIABLE, "").split(os.pathsep):
        if entry.strip():
            directories.append((SITE_PATH_VARIABLE, Path(os.path.expanduser(entry.strip()))))
    return directories


def looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.endswith(SUFFIXES)


def site_files() -> list[SiteFile]:
    """Every site config on the search path, in lookup order, later duplicates marked as shadowed."""
    found: list[SiteFile] = []
    first: dict[str, Path] = {}
    for origin, directory in search_path():
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            name = path.stem
            found.append(SiteFile(name, path, origin, first.get(name)))
            first.setdefault(name, path)
    return found


def find(name: str) -> Path:
    """The file for a site name or path; a ``SiteConfigError`` listing the known names if none."""
    name = str(name).strip()
    if looks_like_path(name):
        path = Path(os.path.expanduser(name))
        if not path.is_file():
            raise SiteConfigError(f"{name}: no such site config file")
        return path
    for _, directory in search_path():
        for suffix in SUFFIXES:
            path = directory / f"{name}{suffix}"
            if path.is_file():
                return path
    known = sorted({site.name for site in site_files()})
    hint = checks.did_you_mean(name, known)
    places = ", ".join(str(directory) for _, directory in search_path())
    raise SiteConfigError(f"{name}: no site config of that name{hint}. Known sites: {', '.join(known) or 'none'}. "
                          f"Looked in: {places}")


def shadowed_copies(path: Path) -> list:
    """Other files of the same name later on the search path, which ``path`` hides."""
    resolved = Path(path).resolve()
    return [site.path for site in site_files()
            if site.name == Path(path).stem and site.shadowed_by is not None
            and Path(site.shadowed_by).resolve() == resolved]


def display(path: Path | None) -> str:
    """A short name for a file in messages: ``site-configs/x.yaml`` for the package's own."""
    if path is None:
        return "<runner_for overrides>"
    path = Path(path)
    if path.parent.resolve() == package_directory().resolve():
        return f"site-configs/{path.name}"
    return str(path)
