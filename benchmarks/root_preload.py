"""What a strategy that uses ROOT costs, with and without the worker preloading it.

Each strategy of the calibration does what every C++ algorithm's strategy does first:
imports ROOT, declares the C++ algorithm classes with cling (``caf_hpc.extras.demo.cpp_algorithms
.declare``), builds an algorithm object and calls it; then it sends one result. Without
``preload`` every strategy's process pays ROOT's interpreter start and the declaration;
with ``preload=["caf_hpc.extras.demo.cpp_algorithms:declare"]`` the worker's fork server pays them
once and each strategy forks with them done. A trivial strategy that does not touch ROOT
is measured in the same run as the floor.

    python benchmarks/root_preload.py [--site NAME] [--strategies 10] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from calibrations import algorithms

from caf_hpc import runner_for
from caf_hpc.steering import clusters
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from caf_hpc.extras.standins.utils import IoV, IoV_Result

PRELOAD = "caf_hpc.extras.demo.cpp_algorithms:declare"


class UsesRoot(AlgorithmStrategy):
    def run(self, iov, iteration, queue):
        from caf_hpc.extras.demo import cpp_algorithms

        algorithm = cpp_algorithms.make("GainCalibration")
        algorithm.setMinHits(10)
        code = algorithm.execute([], iteration, None)  # no input: c_NotEnoughData, straight from C++
        queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), code)})
        queue.put({"type": "final_state", "value": "COMPLETED"})


class Trivial(AlgorithmStrategy):
    def run(self, iov, iteration, queue):
        queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), 0)})
        queue.put({"type": "final_state", "value": "COMPLETED"})


def per_strategy(runner: type, strategy: type, count: int, repeats: int, tmp: Path) -> list[float]:
    times = []
    for repeat in range(repeats):
        started = time.monotonic()
        outcome = run_algorithms(runner, "bench", algorithms(strategy, count), [], tmp / f"{strategy.__name__}{repeat}")
        assert outcome.final_state == "COMPLETED", outcome.error
        times.append((time.monotonic() - started) / count)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--site", help="a site config (default: a local Dask cluster of one worker)")
    args = parser.parse_args()
    target = {"site": args.site} if args.site else {"n_workers": 1}  # one worker: every strategy finds it warm
    plain, preloaded = runner_for(**target), runner_for(**target, preload=[PRELOAD])
    with tempfile.TemporaryDirectory() as tmp:
        run_algorithms(plain, "warm-up", algorithms(Trivial, 2), [], Path(tmp, "warm"))  # cluster started
        started = time.monotonic()
        run_algorithms(preloaded, "warm-up", algorithms(UsesRoot, 1), [], Path(tmp, "first"))
        first_preloaded = time.monotonic() - started
        results = {
            "trivial, no ROOT": per_strategy(plain, Trivial, args.strategies, args.repeats, Path(tmp)),
            "uses ROOT, no preload": per_strategy(plain, UsesRoot, max(2, args.strategies // 4), args.repeats,
                                                  Path(tmp)),
            "uses ROOT, preloaded": per_strategy(preloaded, UsesRoot, args.strategies, args.repeats, Path(tmp)),
        }
    clusters.close_all()
    where = args.site or "local Dask cluster, 1 worker"
    print(f"{where}: wall time per strategy, median over {args.repeats} calibrations")
    for label, times in results.items():
        print(f"  {label:<24} {statistics.median(times) * 1000:8.1f} ms   "
              f"(runs: {', '.join(f'{t * 1000:.1f}' for t in times)} ms)")
    without, with_preload = (statistics.median(results[k]) for k in ("uses ROOT, no preload", "uses ROOT, preloaded"))
    print(f"  first strategy on a worker, preload included: {first_preloaded * 1000:.0f} ms")
    print(f"ratio no preload / preloaded: {without / with_preload:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
