"""The ``caf-hpc`` command: the demo calibration, site configs, the local testbed.

Each sub-command lives in the module that owns its subject and adds itself here with
an ``add_commands(subparsers)`` function; this module only assembles them.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import UserError

__all__ = ["COMMAND_MODULES", "UserError", "build_parser", "main", "version_text"]

#: Modules that contribute sub-commands, each with ``add_commands(subparsers)``.
COMMAND_MODULES = (
    "caf_hpc.extras.demo.command", "caf_hpc.report.command", "caf_hpc.sites.command", "caf_hpc.extras.testbed.command")


def version_text() -> str:
    """caf-hpc's version and those of what it runs on (read from the installed metadata, nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    parts = []
    for name in ("dask", "distributed", "dask-jobqueue", "root"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} not installed")
    return f"caf-hpc {__version__} (Python {sys.version.split()[0]}; {', '.join(parts)})"


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caf-hpc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and (name == err.name or name.startswith(err.name + ".")):
                continue  # that part of the package is not installed
            raise
        module.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:  # Ctrl-C, also while the commands are imported: one line naming what it
        from . import interrupt  # stopped; the clusters close at exit

        interrupt.say()
        return 130


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .steering.settings import SettingsError
    from .steering.shipping import ShippingError

    try:
        return int(args.handler(args) or 0)
    except (UserError, SettingsError, ShippingError) as err:
        print(f"caf-hpc: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # python -m caf_hpc.cli: the package's own module, so that its errors are the ones caught
    from caf_hpc.cli import main as package_main

    sys.exit(package_main())
