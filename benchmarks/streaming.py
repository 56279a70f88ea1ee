"""How fast one strategy's results reach ``runner.results``: 10,000 results in order, exactly once.

Two result classes: CAF's own ``IoV_Result`` (importable on the worker, pickled by
reference) and a namedtuple defined in a module beside the steering script, which the
workers cannot import and which therefore travels by value with the results.

    python benchmarks/streaming.py [--results 10000] [--repeats 3] [--site NAME]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import local_results
from calibrations import algorithms

from caf_hpc import runner_for
from caf_hpc.steering import clusters
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from caf_hpc.extras.standins.utils import IoV, IoV_Result


class Many(AlgorithmStrategy):
    """Sends ``params['count']`` results of the class ``params['local']`` asks for, then COMPLETED."""

    def run(self, iov, iteration, queue):
        count, local = self.algorithm.params["count"], self.algorithm.params["local"]
        make = local_results.LocalResult if local else IoV_Result
        for i in range(count):
            queue.put({"type": "result", "value": make(IoV(1, i, 1, i), 0)})
        queue.put({"type": "final_state", "value": "COMPLETED"})


def rate(runner: type, count: int, local: bool, tmp: Path, repeat: int) -> float:
    (algorithm,) = algorithms(Many, 1, prefix="Many")
    algorithm.params = {"count": count, "local": local}
    started = time.monotonic()
    outcome = run_algorithms(runner, "stream", [algorithm], [], tmp / f"{local}{repeat}")
    elapsed = time.monotonic() - started
    results = outcome.results["Many0"]
    assert outcome.final_state == "COMPLETED", outcome.error
    assert [r.iov.run_low for r in results] == list(range(count)), "out of order, lost or repeated"
    assert type(results[0]).__name__ == ("LocalResult" if local else "IoV_Result")
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--site", help="a site config (default: the local Dask cluster)")
    args = parser.parse_args()
    runner = runner_for(args.site) if args.site else runner_for()
    with tempfile.TemporaryDirectory() as tmp:
        rate(runner, 10, False, Path(tmp), -1)  # cluster up, workers warm
        rates = {local: [rate(runner, args.results, local, Path(tmp), i) for i in range(args.repeats)]
                 for local in (False, True)}
    clusters.close_all()
    for local, label in ((False, "IoV_Result (importable on the worker)"),
                         (True, "a class shipped by value with the script")):
        print(f"{label:<42} median {statistics.median(rates[local]):9.0f} results/s "
              f"(runs: {', '.join(f'{r:.0f}' for r in rates[local])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
