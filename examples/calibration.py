"""A CAF calibration on a Dask cluster: one collector, two algorithms, both of CAF's steps on the cluster.

    basf2 calibration.py [--site NAME | --address ADDRESS] [--output DIRECTORY]     (in a basf2 release)
    python3 calibration.py [...]                               (without basf2: caf-hpc's stand-ins of CAF)

The collector jobs run on ``backend_for(...)`` and the algorithms on ``runner_for(...)``;
with the same arguments both use one cluster: the local one by default, a site config
(``--site``) or a running scheduler (``--address``). Everything else is CAF as usual; the
collector, the algorithms and the input files come from ``my_calibration.py`` beside
this script (yours instead).
"""
import argparse
from pathlib import Path

import my_calibration

from caf_hpc import backend_for, runner_for
from caf_hpc.basf2_compat import CAF, Calibration

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
target = parser.add_mutually_exclusive_group()
target.add_argument("--site", help="site config name or YAML file (default: a local Dask cluster)")
target.add_argument("--address", help="a running Dask scheduler, e.g. tcp://host:8786")
parser.add_argument("--output", default="example-calibration", help="directory for everything it writes")
args = parser.parse_args()
output = Path(args.output).absolute()
settings = {"address": args.address} if args.address else {}

calibration = Calibration("ExampleCalibration", collector=my_calibration.collector(),
                          algorithms=my_calibration.algorithms(),
                          input_files=[str(f) for f in my_calibration.prepare(output / "input")])
for algorithm, strategy in zip(calibration.algorithms, my_calibration.STRATEGIES, strict=True):
    algorithm.strategy = strategy  # CAF's cal.strategies takes one strategy for all algorithms, not a list
calibration.output_patterns = my_calibration.OUTPUT_PATTERNS
calibration.max_files_per_collector_job = 5

calibration.algorithms_runner = runner_for(args.site, **settings)    # the algorithms, on the cluster

caf = CAF()
caf.backend = backend_for(args.site, **settings)     # every calibration's collector jobs, on the same cluster
caf.add_calibration(calibration)
caf.output_dir = str(output / "calibration_results")
caf.run()
payloads = output / "calibration_results" / calibration.name / "outputdb"
print(f"{calibration.name}: {calibration.state}, payloads in {payloads}")
