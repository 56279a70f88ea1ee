"""The ``caf-hpc`` command: the demo calibration, site configs, the local testbed.

Each sub-command lives in the module that owns its subject and adds itself here with
an ``add_commands(subparsers)`` function; this module only assembles them.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

#: Modules that contribute sub-commands, each with ``add_commands(subparsers)``.
COMMAND_MODULES = ("caf_hpc.extras.demo.command", "caf_hpc.sites.command", "caf_hpc.extras.testbed.command")


class UserError(Exception):
    """A mistake the user can fix; printed as one message, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caf-hpc", description=__doc__.splitlines()[0])
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .steering.settings import SettingsError
    from .steering.shipping import ShippingError

    try:
        return int(args.handler(args) or 0)
    except (UserError, SettingsError, ShippingError) as err:
        print(f"caf-hpc: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("caf-hpc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
