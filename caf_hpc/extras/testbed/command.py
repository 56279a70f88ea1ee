"""``caf-hpc testbed``: start, stop and inspect the single-node batch systems on this machine."""
from __future__ import annotations

import argparse
import sys

from . import NAMES, TestbedError, down, environment, is_up, up

#: Exit code of ``status`` when a named system is down (as the scripts' own ``status``).
STATUS_DOWN = 3


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "testbed", help="real single-node Slurm, PBS (over Slurm) and SGE on this machine",
        description="Installs (Debian packages, as root) and starts a real single-node batch system "
                    "on this machine, to try caf-hpc's batch sites (localhost-slurm, localhost-pbs, "
                    "localhost-sge) without a cluster. State lives under $CAF_HPC_TESTBED_DIR "
                    "(default /var/tmp/caf-hpc-testbed).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action, text in (("up", "start (installing what is missing); returns once a job has run"),
                         ("down", "cancel the testbed's jobs and stop the daemons it started"),
                         ("status", "say which systems are up; exit code 3 if any named one is down")):
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument("names", nargs="*", choices=[[], *NAMES], metavar="NAME",
                         help=f"one or more of {', '.join(NAMES)} (default: all)")
        sub.set_defaults(handler=_run_action)
    env = actions.add_parser("env", help="print the shell exports a submitting process needs",
                             description="Prints `export` lines to eval, e.g. the PATH of the PBS commands.")
    env.add_argument("name", choices=NAMES)
    env.set_defaults(handler=_print_environment)


def _run_action(args: argparse.Namespace) -> int:
    names = list(args.names) or list(NAMES)
    if args.action == "down":
        names.reverse()  # PBS rides on Slurm: stop it first
    all_up = True
    try:
        for name in names:
            if args.action == "up":
                up(name)
                print(f"{name}: up")
            elif args.action == "down":
                down(name)
                print(f"{name}: down")
            else:
                running = is_up(name)
                all_up = all_up and running
                print(f"{name}: {'up' if running else 'down'}")
    except TestbedError as err:
        print(f"caf-hpc testbed: {err}", file=sys.stderr)
        return 1
    return 0 if all_up else STATUS_DOWN


def _print_environment(args: argparse.Namespace) -> int:
    for key, value in environment(args.name).items():
        print(f"export {key}={value!r}")
    return 0
