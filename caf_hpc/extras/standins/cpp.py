"""The C++ ``CalibrationAlgorithm`` stand-in, compiled at run time by ROOT's cling.

Real CAF algorithms are C++ classes derived from ``Belle2::CalibrationAlgorithm``,
reached through ROOT's Python bindings. ``include/CalibrationAlgorithm.h`` is a small
class of the same shape (``CafHpc::CalibrationAlgorithm``); ``load()`` declares it once
per process and makes it take what CAF's Python strategies pass, as basf2's own
``execute(PyObject* runs, ...)`` overload does: a Python list of ``ExpRun`` and a
Python ``IoV``. Result codes come back as ``int``, so that an ``IoV_Result`` holding
one pickles anywhere.

ROOT is optional: nothing here is imported unless ROOT is wanted, and ``available()``
tells whether it can be. What the runner itself needs of ROOT (is an object C++, how it
travels, ROOT quietened) is the package's ``caf_hpc.root_helpers``, re-exported here.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...root_helpers import (
    ALPHA_NOTICE,
    available,
    class_name,
    expand,
    has_dictionary,
    import_root,
    is_cpp_object,
    quiet_streaming,
    reduce,
)
from .conditions import conditions

__all__ = ["ALPHA_NOTICE", "INCLUDE_DIR", "HEADER", "adopt", "available", "class_name", "cpp_iov", "cpp_runs",
           "declare", "declare_header", "expand", "has_dictionary", "import_root", "is_cpp_object", "load",
           "quiet_streaming", "reduce", "warm_up"]

INCLUDE_DIR = Path(__file__).with_name("include")
HEADER = INCLUDE_DIR / "CalibrationAlgorithm.h"

_lock = threading.Lock()
_declared: set = set()


def declare(code: str, what: str) -> Any:
    """Compiles ``code`` with cling once per process (``what`` names it for errors); returns ROOT."""
    ROOT = import_root()
    with _lock:
        if what not in _declared:
            if not ROOT.gInterpreter.Declare(code):
                raise RuntimeError(f"ROOT's interpreter could not compile {what}; its errors are above")
            _declared.add(what)
    return ROOT


def declare_header(header: Path) -> Any:
    """Declares a header of the package (its include directory on cling's path); returns ROOT."""
    ROOT = import_root()
    with _lock:
        if "include-path" not in _declared:
            ROOT.gInterpreter.AddIncludePath(str(INCLUDE_DIR))
            _declared.add("include-path")
    return declare(f'#include "{header}"', str(header))


def load() -> Any:
    """The ``CafHpc`` C++ namespace, declared and made to take CAF's Python arguments."""
    ROOT = declare_header(HEADER)
    with _lock:
        if "pythonized" not in _declared:
            _pythonize(ROOT)
            conditions.mirror(_CppConditions(ROOT.CafHpc.Conditions.instance()))
            _declared.add("pythonized")
    return ROOT.CafHpc


def adopt(algorithm: Any) -> None:
    """Gives a C++ algorithm the Python side ``load()`` adds, wherever its class came from.

    A class with a dictionary in a library reaches a worker without anyone declaring it:
    ROOT loads the library by itself (from its rootmap, on ``LD_LIBRARY_PATH``) when it
    unpickles the object. basf2's own library takes CAF's Python arguments and shares one
    conditions configuration by itself; the stand-in gets both from ``load()``, which the
    stand-in strategies call through here before executing (nothing for a Python algorithm).
    """
    if is_cpp_object(algorithm):
        load()


def warm_up(*classes: Any) -> None:
    """Uses one default-made object of each algorithm class the way a strategy will, once.

    ROOT does much of its work the first time in a process: it builds a class's streamer
    information when it first streams one of its objects (about 0.1 s a class), and
    cppyy makes each method's call wrapper and each template instance (the run list's
    ``std::vector``) on first call (about 0.2 s in all). Done in a worker's fork server
    (its preload), every strategy process forked from it finds them made: it unpickles
    and runs its algorithm at once. ``execute`` without input files executes nothing:
    no run, so ``calibrate()`` is not called.
    """
    import pickle

    with quiet_streaming():
        for cls in classes:
            algorithm = pickle.loads(pickle.dumps(cls()))
            algorithm.setInputFileNames([])
            algorithm.getRunListFromAllData()
            algorithm.execute([], 0, None)
            algorithm.commit()


def cpp_iov(ROOT: Any, iov: Any) -> Any:
    """A ``CafHpc::IntervalOfValidity`` from a Python IoV, a C++ one, or None (empty)."""
    if iov is None:
        return ROOT.CafHpc.IntervalOfValidity()
    if isinstance(iov, ROOT.CafHpc.IntervalOfValidity):
        return iov
    return ROOT.CafHpc.IntervalOfValidity(*(int(x) for x in iov))


def cpp_runs(ROOT: Any, runs: Iterable) -> Any:
    """A ``std::vector<CafHpc::ExpRun>`` from (exp, run) pairs."""
    vector = ROOT.std.vector[ROOT.CafHpc.ExpRun]()
    for exp, run in runs:
        vector.push_back(ROOT.CafHpc.ExpRun(int(exp), int(run)))
    return vector


def _pythonize(ROOT: Any) -> None:
    base = ROOT.CafHpc.CalibrationAlgorithm
    cpp_execute = base.execute

    def execute(self: Any, runs: Iterable = (), iteration: int = 0, iov: Any = None) -> int:
        """Executes over ``runs`` (ExpRun tuples) for ``iov`` (a Python or C++ IoV); returns the result code."""
        return int(cpp_execute(self, cpp_runs(ROOT, runs), int(iteration), cpp_iov(ROOT, iov)))

    base.execute = execute


class _CppConditions:
    """Keeps the C++ conditions singleton equal to the Python stand-in's configuration."""

    def __init__(self, cpp: Any) -> None:
        self._cpp = cpp

    def __call__(self, state: Any) -> None:
        self._cpp.reset()
        for database_txt in reversed(state.testing_payloads):  # prepended one by one: keep the order
            self._cpp.prependTestingPayloads(str(database_txt))
        if state.save_payloads:
            self._cpp.setSavePayloads(str(state.save_payloads))
