"""``caf-hpc demo``: the project's main job, a real calibration through the runner."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .algorithms import ALGORITHM_NAMES


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a demo calibration (pedestal -> gain -> time offset) through the runner",
        description="Simulates 2 experiments x 20 runs of detector hits (a raw hit file per run), then runs "
                    "the calibration as CAF would: collector jobs on the cluster (DaskBackend) turn the raw "
                    "files into collector output, then three dependent algorithms run through "
                    "DaskAlgorithmsRunner on the same cluster. Prints the collector jobs, the IoVs and result "
                    "codes, the logs, the output database and the wall time.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--site", help="site config name or YAML file (default: the local Dask cluster)")
    target.add_argument("--address", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, help="local cluster: strategies at once (default: one per core)")
    parser.add_argument("--fail", choices=ALGORITHM_NAMES, help="make this algorithm fail, to show fail-fast")
    parser.add_argument("--flavour", choices=("auto", "cpp", "python"), default="auto",
                        help="cpp: C++ algorithms through ROOT, reading ROOT files; python: pure-Python ones; "
                             "auto (default): cpp when ROOT is installed")
    parser.add_argument("--output", type=Path, default=Path("caf-hpc-demo"),
                        help="directory for collector output, logs and database (default: ./caf-hpc-demo)")
    parser.add_argument("--seed", type=int, default=2024, help="random seed of the simulation (default: 2024)")
    parser.add_argument("--runs", type=int, default=20, help="runs per experiment (default: 20)")
    parser.add_argument("--timeout", type=float, help="seconds one strategy may run")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the runner's log messages")
    parser.set_defaults(handler=_demo)


#: The demo's flags that set a runner setting: a bad value is named by the flag the user typed.
_FLAGS = {"--workers": "n_workers", "--timeout": "timeout"}


def _demo(args: argparse.Namespace) -> int:
    from ...errors import UserError
    from ...steering.binding import runner_for
    from ...steering.directory_lock import DirectoryInUse, DirectoryLock
    from ...steering.progress import add_listener
    from ...steering.settings import value_problem
    from .display import RunDisplay
    from .run import choose_flavour, collector_progress, flavour_settings, format_report, run_demo

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.runs < 1:
        raise UserError(f"--runs must be at least 1, got {args.runs}")
    _check_output(args.output, UserError)
    try:
        flavour = choose_flavour(args.flavour)
    except ValueError as err:
        raise UserError(f"--flavour {args.flavour}: {err}") from None
    overrides = {"n_workers": args.workers, "timeout": args.timeout, "address": args.address}
    for flag, setting in _FLAGS.items():
        problem = value_problem(setting, overrides[setting])
        if problem:
            raise UserError(f"{flag} {problem}")
    runner = runner_for(args.site, **{k: v for k, v in overrides.items() if v is not None}, **flavour_settings(flavour))
    target = runner.settings().description
    try:
        lock = DirectoryLock.acquire(args.output, "caf-hpc demo")
    except DirectoryInUse as err:
        raise UserError(str(err)) from None
    with lock:
        print(f"caf-hpc demo: simulating and calibrating on {target} with the {flavour} algorithms "
              f"(output in {args.output}) ...", flush=True)
        watched: list = []
        display = RunDisplay(list(ALGORITHM_NAMES),
                             collector=lambda: collector_progress(watched[0]) if watched else None)
        with display:  # a live table on a terminal, else plain lines
            stop = add_listener(display.update)
            try:
                report = run_demo(runner, args.output, seed=args.seed, runs=args.runs, fail=args.fail,
                                  flavour=flavour, watch=watched.append)
            except KeyboardInterrupt:
                _stop_calibration(watched)
                raise
            finally:
                stop()
    print(format_report(report, target))
    return 0 if report.succeeded else 1


#: How long Ctrl-C waits for CAF's calibration thread (a daemon, as in CAF) once its runs and jobs are stopped.
_THREAD_WAIT = 1.0


def _stop_calibration(watched: list) -> None:
    """Ctrl-C: CAF's calibration thread goes on, in its runner or collector jobs; stop them and wait for it.

    The demo says "interrupted" itself, so the stopped runner's and jobs' own messages are not shown.
    """
    from ... import interrupt

    for name in ("caf_hpc", "caf"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    interrupt.stop_runs()
    for calibration in watched:  # its runs and jobs are stopped: a moment for its bookkeeping, not CAF's
        if calibration.is_alive():  # heartbeats (a thread that waits for its jobs to leave init sleeps 5 s)
            calibration.join(timeout=_THREAD_WAIT)


def _check_output(output: Path, error: type) -> None:
    """Refuses an --output that cannot hold the demo, before anything is simulated or submitted."""
    if output.exists() and not output.is_dir():
        raise error(f"--output {output} is a file, not a directory; give a directory (it is made if missing)")
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".caf-hpc-write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise error(f"--output {output}: cannot make or write that directory ({err.strerror}); "
                    "give a directory you can write to") from None
