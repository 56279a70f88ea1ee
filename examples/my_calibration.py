"""The parts of the example calibration that are your own: the collector, the algorithms, the input files.

``calibration.py`` (the steering script) takes them from here. With basf2 they are basf2's
own test pieces: the ``CaTest`` collector and ``TestCalibrationAlgorithm`` and
``TestBoundarySettingAlgorithm``, over files of empty events that basf2 writes. Without
basf2 they are caf-hpc's demo detector: raw hit files, one per run, a collector that turns
a job's files into collector output, and the pedestal and gain algorithms. Replace them
with your own collector, algorithms and data.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from caf_hpc.basf2_compat import HAVE_BASF2, SimpleRunByRun, SingleIOV, register_module

EXPERIMENT = 1
RUNS = range(1, 11)

if HAVE_BASF2:  # pragma: no cover - needs a basf2 release
    OUTPUT_PATTERNS = ["CollectorOutput.root"]
    STRATEGIES = (SingleIOV, SingleIOV)

    def collector():
        return register_module("CaTest")

    def algorithms() -> list:
        from ROOT import Belle2

        return [Belle2.TestCalibrationAlgorithm(), Belle2.TestBoundarySettingAlgorithm()]

    def prepare(directory: Path) -> list:
        """One file of 100 empty events per run, written by basf2 (as basf2's calibration examples make theirs)."""
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for run in RUNS:
            path = directory / f"events_e{EXPERIMENT}_r{run}.root"
            script = ("import basf2; path = basf2.create_path(); "
                      f"path.add_module('EventInfoSetter', expList=[{EXPERIMENT}], runList=[{run}], evtNumList=[100]); "
                      f"path.add_module('RootOutput', outputFileName={str(path)!r}); basf2.process(path)")
            subprocess.run([sys.executable, "-c", script], check=True)
            files.append(path)
        return files
else:
    from caf_hpc.extras.demo import algorithms as demo
    from caf_hpc.extras.demo.collector import COLLECTOR
    from caf_hpc.extras.demo.simulate import simulate
    from caf_hpc.extras.standins import release

    OUTPUT_PATTERNS = ["CollectorOutput.json"]
    STRATEGIES = (SimpleRunByRun, SingleIOV)  # pedestals run by run, one gain for all runs

    def collector():
        return register_module(COLLECTOR, output_format="json")

    def algorithms() -> list:
        return [demo.PedestalCalibration(), demo.GainCalibration()]

    def prepare(directory: Path) -> list:
        """Raw hit files, one per run; and a stand-in basf2 release set up, as ``b2setup`` would have."""
        tools = release.make_tools(directory / "basf2-tools")
        os.environ.update(release.environment(tools))  # CAF's collector jobs set themselves up from these
        return simulate(directory / "raw", experiments=(EXPERIMENT,), runs_per_experiment=len(RUNS),
                        output_format="raw")
