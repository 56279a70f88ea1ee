"""What the runner needs to know about ROOT: whether an object is C++, how it travels, ROOT quietened.

The steering side pickles an algorithm that holds a C++ object (``reduce``), and the
strategy's process rebuilds it (``expand``) with ROOT's messages off while it streams
(``quiet_streaming``). These work for any class ROOT knows, basf2's own and the
stand-in's alike; the stand-in ``CalibrationAlgorithm`` (``caf_hpc.extras.standins.cpp``)
builds on them, not the other way round.

ROOT is optional: nothing here imports it unless it is wanted (``import_root``), or
already imported (``quiet_streaming``), and ``available()`` tells whether it can be.
"""
from __future__ import annotations

import contextlib
import importlib.util
import sys
import warnings
from collections.abc import Iterator
from typing import Any

#: The notice the pip build of ROOT gives on import (an alpha release); it would open every
#: algorithm's log and every demo run, so it is filtered wherever ROOT may be imported.
ALPHA_NOTICE = "(?s).*distribution of ROOT is in alpha stage"


def available() -> bool:
    """True when ROOT's Python bindings can be imported here (the ``root`` extra)."""
    return importlib.util.find_spec("ROOT") is not None


def import_root() -> Any:
    """``import ROOT``, without the pip build's notice that it is an alpha release (``ALPHA_NOTICE``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=ALPHA_NOTICE)
        import ROOT
    ROOT.gROOT.SetBatch(True)
    return ROOT


def is_cpp_object(obj: Any) -> bool:
    """True for a proxy of a C++ object made by ROOT's bindings (cppyy)."""
    return (hasattr(type(obj), "__cpp_name__") and type(obj).__module__.startswith("cppyy.gbl")
            and not isinstance(obj, type))


def reduce(obj: Any) -> tuple:
    """How a runner pickles a C++ object: ROOT's own streaming of its data members, rebuilt by ``expand``."""
    expand_cpp, args = obj.__reduce__()[:2]
    return expand, (expand_cpp, *args)


def expand(expand_cpp: Any, *args: Any) -> Any:
    """Rebuilds a C++ object pickled by ``reduce``, with ROOT started first.

    ROOT's own rebuilding function lives in an extension module that imports the ``ROOT``
    package without starting it (ROOT starts on first use): in a process that has not used
    ROOT yet, such as a worker's strategy process without a preload that gets an object of
    a class from a library, the rebuild would crash on the bindings' missing global scope.
    """
    import_root().gROOT  # noqa: B018 - the first access starts ROOT
    return expand_cpp(*args)


def class_name(obj: Any) -> str:
    """The C++ name of a C++ object's class, for messages."""
    return str(type(obj).__cpp_name__)


def has_dictionary(obj: Any) -> bool:
    """True when the object's class comes with a ROOT dictionary in a library (as every basf2
    algorithm does), which a worker with the same software loads by itself; False for a class
    only declared to the interpreter of this process."""
    import ROOT

    return bool(ROOT.TClass.GetClass(class_name(obj)).HasDictionary())


@contextlib.contextmanager
def quiet_streaming() -> Iterator[None]:
    """ROOT's messages off while it pickles or unpickles C++ objects.

    For a class declared only to the interpreter, ROOT warns that its bases "will not be
    saved" and reports that no dictionary was found, then streams every data member
    through the interpreter's class information all the same (the tests check that an
    object's settings arrive). Those lines would stand in the user's terminal and in the
    algorithm's log as if something had failed.
    """
    ROOT: Any = sys.modules.get("ROOT")  # a module without type information (pyproject.toml)
    if ROOT is None:
        yield
        return
    level = ROOT.gErrorIgnoreLevel
    ROOT.gErrorIgnoreLevel = ROOT.kFatal
    try:
        yield
    finally:
        ROOT.gErrorIgnoreLevel = level
