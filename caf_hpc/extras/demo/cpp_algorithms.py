"""The demo's C++ flavour: its three algorithms in C++ (``include/DemoAlgorithms.h``), compiled
by ROOT's cling, reading collector output written as ROOT files.

The C++ classes exist only in a process that declared them, as a class compiled in a
steering script does: a worker gets them by running ``declare`` before the strategy,
through the runner's ``preload`` (once per worker, in its fork server) or through a
factory (``make``) that declares the class and builds the object.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..standins import cpp
from ..standins.framework import Algorithm
from ..standins.strategies import AlgorithmStrategy, SimpleRunByRun, SingleIOV
from ..standins.utils import ExpRun
from . import detector

HEADER = Path(__file__).with_name("include") / "DemoAlgorithms.h"
#: The collector module whose output the algorithms read (their prefix).
COLLECTOR = "DemoCollector"
#: What a worker runs before strategies that use these algorithms (runner setting ``preload``).
PRELOAD = f"{__name__}:declare"
STRATEGIES: dict[str, type[AlgorithmStrategy]] = {
    "PedestalCalibration": SimpleRunByRun, "GainCalibration": SingleIOV, "TimeOffsetCalibration": SingleIOV}
_declared: dict = {}


def declare() -> Any:
    """Declares the C++ algorithms in this process (once); returns the ``CafHpcDemo`` namespace.

    As a worker's preload it also warms each class up (``cpp.warm_up``), so that the
    strategy processes forked afterwards unpickle and run theirs without ROOT's first-use costs.
    """
    if HEADER.name in _declared:
        return _declared[HEADER.name]
    cpp.load()
    constants = (
        "namespace DemoDetector {\n"
        f"  constexpr double kSourceEnergyKeV = {detector.SOURCE_ENERGY_KEV!r};\n"
        f"  constexpr double kTimeWalkNsSqrtKeV = {detector.TIME_WALK_NS_SQRT_KEV!r};\n"
        f"  constexpr double kMinWalkEnergyKeV = {detector.MIN_WALK_ENERGY_KEV!r};\n"
        f"  constexpr const char* kPedestalEvents = \"{detector.PEDESTAL_EVENTS}\";\n"
        f"  constexpr const char* kSignalHits = \"{detector.SIGNAL_HITS}\";\n"
        "}\n")
    cpp.declare(constants, "DemoDetector constants")
    namespace = cpp.declare_header(HEADER).CafHpcDemo
    cpp.warm_up(*(getattr(namespace, name) for name in STRATEGIES))
    _declared[HEADER.name] = namespace
    return namespace


def make(name: str, fail: bool = False) -> Any:
    """A new C++ algorithm object ``name``, declaring the classes first where needed (a factory)."""
    algorithm = getattr(declare(), name)()
    algorithm.setFail(fail)
    return algorithm


def factories(fail: str | None = None) -> dict[str, Callable[[], Any]]:
    """``runner_for(factories=...)`` for the three algorithms: each rebuilds its object on the worker."""
    return {name: functools.partial(make, name, name == fail) for name in STRATEGIES}


def make_algorithms(fail: str | None = None) -> list[Algorithm]:
    """The three wrapped C++ algorithms, in dependency order, with their strategies set."""
    wrapped = []
    for name, strategy in STRATEGIES.items():
        algorithm = Algorithm(make(name, fail=name == fail))
        algorithm.strategy = strategy
        wrapped.append(algorithm)
    return wrapped


def write_collector_output(path: str | Path, objects: dict[str, dict[ExpRun, list]]) -> Path:
    """Writes ``{object: {ExpRun: rows}}`` as a CAF collector output file: one TTree per object and run
    under ``DemoCollector/<object>/<object>_<exp>.<run>``."""
    ROOT = cpp.import_root()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = ROOT.TFile(str(path), "RECREATE")
    try:
        top = handle.mkdir(COLLECTOR)
        for name, per_run in objects.items():
            directory = top.mkdir(name)
            for exprun, rows in per_run.items():
                directory.cd()
                _fill_tree(ROOT, f"{name}_{exprun.exp}.{exprun.run}", name, rows).Write()
    finally:
        handle.Close()
    return path


def _fill_tree(ROOT: Any, tree_name: str, kind: str, rows: list) -> Any:
    from array import array

    tree = ROOT.TTree(tree_name, kind)
    exp, run = array("i", [0]), array("i", [0])
    tree.Branch("exp", exp, "exp/I")
    tree.Branch("run", run, "run/I")
    if kind == detector.PEDESTAL_EVENTS:      # rows: [exp, run, [adc per channel]]
        adc = ROOT.std.vector["int"]()
        tree.Branch("adc", adc)
        for exp[0], run[0], adcs in rows:
            adc.clear()
            for value in adcs:
                adc.push_back(value)
            tree.Fill()
    else:                                     # rows: [exp, run, channel, adc, time_ns]
        channel, amplitude, time = array("i", [0]), array("i", [0]), array("d", [0.0])
        tree.Branch("channel", channel, "channel/I")
        tree.Branch("adc", amplitude, "adc/I")
        tree.Branch("time", time, "time/D")
        for exp[0], run[0], channel[0], amplitude[0], time[0] in rows:
            tree.Fill()
    return tree
