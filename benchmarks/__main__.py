"""Runs the whole suite and writes its report: ``python -m benchmarks`` from the checkout.

    python -m benchmarks [--quick] [--out DIR] [--only KEY,...] [--no-batch]

Writes ``report.md``, ``report.json`` and ``figures.png`` into ``--out`` (default
``benchmarks/results/<machine>/``, for ``--quick`` ``benchmarks/results/quick/``, which git
ignores). The batch figures need the testbed's Slurm and Podman: started here when they are
down and this runs as root (then stopped again), else reported as not measured. ``--quick``
is a smoke run (a minute, no batch system, no 5 s reference except one strategy): it checks
that the suite works, not how fast.
A measure that fails is reported as such and the others go on; Ctrl-C writes the report
of what was measured so far.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import sys
import tempfile
import time
from pathlib import Path

from caf_hpc.steering import clusters

from . import allocation, batch, measures, report
from .record import Measure

RESULTS = Path(__file__).resolve().parent / "results"
#: The measures on this machine, in the order they run (the cold start first: no cluster is up yet).
#: The memory second: before the streaming measures raise the process's high-water mark, which would
#: hide a growth behind memory freed earlier.
LOCAL_MEASURES = {"cold_start": measures.cold_start, "memory": measures.memory, "overhead_local": measures.overhead,
                  "realistic": measures.realistic,
                  "latency": measures.latency, "throughput": measures.throughput,
                  "wall_over_sum": measures.wall_over_sum, "parallel": measures.parallel, "many": measures.many,
                  "root": measures.root_preload, "fork_server": measures.fork_server,
                  "collector_throughput": measures.collector_throughput,
                  "collector_latency": measures.collector_latency, "collector_wall": measures.collector_wall}
#: The measures on the testbed's Slurm, after the local ones.
BATCH_MEASURES = ("overhead_slurm", "collector_slurm", "allocation", "allocation_wall")
KEYS = (*LOCAL_MEASURES, *BATCH_MEASURES)


def _arguments(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts, one repetition")
    parser.add_argument("--out", type=Path, help="where the report goes (default: benchmarks/results/<machine>)")
    parser.add_argument("--only", help=f"comma-separated measures to run, of: {', '.join(KEYS)}")
    parser.add_argument("--no-batch", action="store_true", help="leave out the figures on the testbed's Slurm")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(KEYS)
    unknown = sorted(only - set(KEYS))
    if unknown:
        guesses = [match for name in unknown for match in difflib.get_close_matches(name, KEYS, n=1)]
        parser.error(f"--only: unknown measure(s) {', '.join(unknown)}; choose from {', '.join(KEYS)}"
                     + (f" (did you mean {', '.join(guesses)}?)" if guesses else ""))
    args.only = only
    return args


def _not_measured(key: str, reason: str) -> Measure:
    """The row of a batch measure that was not measured, and why."""
    if key == "collector_slurm":
        return Measure(key, measures.COLLECTOR_SLURM, "ms", skipped=reason)
    if key in ("allocation", "allocation_wall"):
        title, target = (allocation.HELD_TITLE, 1.3) if key == "allocation" else (allocation.WALL_TITLE, 1.1)
        return Measure(key, title, "×", target=target, skipped=reason)
    return Measure(key, "overhead per trivial strategy on the testbed's Slurm over TLS", "ms", target=35,
                   skipped=reason)


def _run_batch(plan: measures.Plan, tmp: Path, cold: Measure, keys: list) -> list:
    """The batch measures ``keys``; one that fails is reported as such and the others go on."""
    done = []
    try:
        with batch.testbeds(("slurm", "podman") if "overhead_slurm" in keys else ("slurm",), tmp / "home"):
            if "overhead_slurm" in keys:
                try:
                    try:
                        image = batch.worker_image(tmp / "image-context")
                    except Exception as err:  # the Slurm figures without the container's
                        image = None
                        cold.how += f". No figure in the container: its image could not be built ({err})"
                        print(f"no worker image, so no cold start in the container: {err}", file=sys.stderr)
                    # under the directory the container binds
                    done.append(measures.batch(plan, Path.cwd() / "runs", cold, image))
                except Exception as err:  # reported, with everything measured before it
                    done.append(_not_measured("overhead_slurm", f"failed: {type(err).__name__}: {err}"))
            if "collector_slurm" in keys:
                try:
                    done.append(measures.collector_slurm(plan, Path.cwd() / "collector"))
                except Exception as err:
                    done.append(_not_measured("collector_slurm", f"failed: {type(err).__name__}: {err}"))
            wanted = [key for key in ("allocation", "allocation_wall") if key in keys]
            if wanted:  # one pair of runs gives both rows
                try:
                    done += [m for m in allocation.measures(Path.cwd() / "allocation") if m.key in wanted]
                except Exception as err:
                    done += [_not_measured(key, f"failed: {type(err).__name__}: {err}") for key in wanted]
    except batch.Unavailable as err:
        done += [_not_measured(key, str(err)) for key in keys if key not in {m.key for m in done}]
    return done


def main(argv: list) -> int:
    args = _arguments(argv)
    plan = measures.QUICK if args.quick else measures.Plan()
    logging.getLogger("caf_hpc").setLevel(logging.WARNING)  # the runner's progress lines, by the thousand
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS / report.machine()["label"])
    started, clock = report.now(), time.monotonic()
    done: list = []
    steps = [(key, measure) for key, measure in LOCAL_MEASURES.items() if key in args.only]
    failed = False
    with tempfile.TemporaryDirectory(prefix="caf-hpc-benchmarks-") as tmp:
        try:
            for number, (key, measure) in enumerate(steps, 1):
                print(f"[{number}/{len(steps)}] {key} ...", end=" ", flush=True)
                step = time.monotonic()
                try:
                    done.append(measure(plan, Path(tmp, key)))
                except Exception as err:  # reported, and the other measures go on
                    failed = True
                    done.append(Measure(key, key, "", skipped=f"failed: {type(err).__name__}: {err}"))
                print(f"{time.monotonic() - step:.0f} s", flush=True)
            batch_keys = [key for key in BATCH_MEASURES if key in args.only]
            if batch_keys and (args.quick or args.no_batch):
                reason = f"left out ({'--quick' if args.quick else '--no-batch'})"
                done += [_not_measured(key, reason) for key in batch_keys]
            elif batch_keys:
                print("[batch] the testbed's Slurm ...", end=" ", flush=True)
                step = time.monotonic()
                cold = next((m for m in done if m.key == "cold_start" and not m.skipped),
                            Measure("cold_start", "cold start", "s"))
                measured = _run_batch(plan, Path(tmp, "batch"), cold, batch_keys)
                failed |= any((m.skipped or "").startswith("failed") for m in measured)
                done += measured
                print(f"{time.monotonic() - step:.0f} s", flush=True)
        except KeyboardInterrupt:
            print("\ninterrupted: the report holds what was measured so far", file=sys.stderr)
            failed = True
        finally:
            clusters.close_all()
    report.write(out, done, started, time.monotonic() - clock, args.quick, not args.no_batch and not args.quick,
                 only=[key for key in KEYS if key in args.only] if args.only != set(KEYS) else None)
    print(f"report: {out / 'report.md'}")
    for measure in done if not args.quick else ():  # a smoke run's counts are too small to judge
        if measure.met is False:
            print(f"  missed: {measure.title}: {report.number(measure.figures[measure.judged].median, measure.unit)} "
                  f"{measure.unit} (target {measure.target_text})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
