"""Per-strategy overhead of the runner on warm workers, and its cold start.

A calibration of N trivial algorithms (each sends one result and its final state) is
run through the runner exactly as CAF would; the wall time per strategy is its
overhead. The cold start is the time from the first ``run()`` (no cluster yet) to the
first strategy running. The baseline, measured in the same run, is the pattern of
CAF's reference runner: a forked child per strategy, its queue polled every 5 seconds.

    python benchmarks/strategy_overhead.py [--site NAME] [--strategies 20] [--repeats 5]
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

from calibrations import algorithms as named_algorithms

from caf_hpc import DaskAlgorithmsRunner, runner_for

from caf_hpc.steering import clusters
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from caf_hpc.extras.standins.utils import IoV, IoV_Result

REFERENCE_POLL_SECONDS = 5.0


class TrivialStrategy(AlgorithmStrategy):
    def run(self, iov, iteration, queue):
        started = Path(self.output_dir, "first-strategy-started")
        if not started.exists():
            started.write_text(repr(time.time()))
        queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), 0)})
        queue.put({"type": "final_state", "value": "COMPLETED"})


def algorithms(count: int) -> list:
    return named_algorithms(TrivialStrategy, count, prefix="Trivial")


def reference_pattern(count: int) -> float:
    """Seconds per strategy with a forked child and a 5 s poll, as CAF's SeqAlgorithmsRunner does."""
    context = multiprocessing.get_context("fork")
    started = time.monotonic()
    for algorithm in algorithms(count):
        queue = context.Queue()
        strategy = algorithm.strategy(algorithm)
        child = context.Process(target=strategy.run, args=(None, 0, queue))
        child.start()
        while True:
            time.sleep(REFERENCE_POLL_SECONDS)
            messages = []
            while not queue.empty():
                messages.append(queue.get())
            if any(m["type"] == "final_state" for m in messages) or not child.is_alive():
                break
        child.join(timeout=30)
    return (time.monotonic() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-strategies", type=int, default=2)
    parser.add_argument("--site", help="a site config (default: the local Dask cluster)")
    args = parser.parse_args()
    runner = runner_for(args.site) if args.site else DaskAlgorithmsRunner
    with tempfile.TemporaryDirectory() as tmp:
        called = time.time()
        warm = run_algorithms(runner, "warm-up", algorithms(2), [], Path(tmp, "warm"))
        assert warm.final_state == "COMPLETED", warm.error
        cold = float(Path(tmp, "warm", "0", "algorithm_output", "first-strategy-started").read_text()) - called
        per_strategy = []
        for repeat in range(args.repeats):
            started = time.monotonic()
            outcome = run_algorithms(runner, "bench", algorithms(args.strategies), [], Path(tmp, str(repeat)))
            assert outcome.final_state == "COMPLETED", outcome.error
            per_strategy.append((time.monotonic() - started) / args.strategies)
    clusters.close_all()
    median = statistics.median(per_strategy)
    baseline = reference_pattern(args.baseline_strategies)
    target = args.site or "local Dask cluster"
    print(f"{target}: cold start, run() to first strategy running: {cold:.2f} s")
    print(f"{target}: warm workers, median {median * 1000:.1f} ms per strategy "
          f"(runs: {', '.join(f'{x * 1000:.1f}' for x in per_strategy)} ms)")
    print(f"reference pattern (fork + {REFERENCE_POLL_SECONDS:g} s poll): {baseline * 1000:.0f} ms per strategy")
    print(f"ratio reference / caf-hpc: {baseline / median:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
