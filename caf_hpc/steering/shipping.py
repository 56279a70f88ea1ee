"""Turning a CAF algorithm into bytes a worker can run, or saying clearly why not.

Pure-Python strategies and algorithms travel with cloudpickle. Code that lives in the
steering script, or in modules beside it that the workers cannot import, travels by
value: whatever is not part of the installed software environment (standard library,
site-packages, a basf2 release) counts as such.

Real CAF algorithms hold a C++ object. ROOT pickles it by streaming its data members,
and a worker can unpickle it only where its class is known: a class with a dictionary in
a library (every basf2 algorithm) is loaded there by itself; a class declared only to
this process's interpreter must be declared on the worker too, by the runner's
``preload``. Otherwise the user names a factory (``"package.module:function"`` or a
function) that builds the object on the worker. Everything is checked before the first
strategy is submitted.
"""
from __future__ import annotations

import collections
import copy
import importlib
import io
import pickle
import os
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import cloudpickle

from ..protocol import StrategyJob
from ..extras.standins import cpp

Factory = Union[str, Callable[[], Any]]

#: The parts of a CAF Algorithm that travel to the worker.
_ALGORITHM_PARTS = ("algorithm", "strategy", "params", "pre_algorithm", "data_input")
_OWN_PACKAGES = {"caf_hpc", "caf", "basf2", "ROOT", "cloudpickle"}
_INSTALLED_MARKERS = ("site-packages", "dist-packages")


class ShippingError(ValueError):
    """An algorithm cannot be sent to a Dask worker; the message says how to make it shippable."""


def resolve_factory(spec: Factory, algorithm_name: str) -> Callable[[], Any]:
    """Imports ``"package.module:function"`` (or accepts a callable) and checks it is callable."""
    if callable(spec):
        return spec
    module_name, sep, attribute = str(spec).partition(":")
    if not sep or not module_name or not attribute:
        raise ShippingError(f"factory {spec!r} for algorithm {algorithm_name!r} is not of the form "
                            "'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ShippingError(f"factory {spec!r} for algorithm {algorithm_name!r}: cannot import module "
                            f"{module_name!r} ({err}). Put it on PYTHONPATH or install it.") from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ShippingError(f"factory {spec!r} for algorithm {algorithm_name!r}: module {module_name!r} "
                            f"has no function {attribute!r}")
    return target


def _installed_roots() -> list[Path]:
    """Directories whose modules every worker of the same software environment imports itself:
    the standard library, site-packages, and a basf2 release."""
    roots = {Path(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
             if (p := sysconfig.get_paths().get(key))}
    for variable in ("BELLE2_RELEASE_DIR", "BELLE2_LOCAL_DIR", "BELLE2_EXTERNALS_DIR"):
        if os.environ.get(variable):
            roots.add(Path(os.environ[variable]))
    return sorted(r.resolve() for r in roots)


def _is_local(module: Any, installed: Iterable[Path]) -> bool:
    """True for user code (a steering script's helpers, a test suite): shipped by value."""
    name = getattr(module, "__name__", "")
    file = getattr(module, "__file__", None)
    if not file or name == "__main__" or name.split(".")[0] in _OWN_PACKAGES:
        return False
    path = Path(file).resolve()
    if any(marker in path.parts for marker in _INSTALLED_MARKERS):
        return False
    return not any(root == path.parent or root in path.parents for root in installed)


#: ``_is_local``'s verdicts by installed roots, then by (module name, file).
_verdicts: dict = {}


def register_local_modules(extra: Iterable[str] = ()) -> list[str]:
    """Makes cloudpickle ship user modules by value; returns their names.

    ``extra`` names further modules (imported already) that the workers cannot import.
    Each module is judged once: resolving the paths of the ~700 modules a steering
    process holds took 27 ms, at the start of every ``run()``.
    """
    installed = _installed_roots()
    verdicts = _verdicts.setdefault(tuple(installed), {})
    chosen = []
    for name, module in list(sys.modules.items()):
        if module is None:
            continue
        key = (name, getattr(module, "__file__", None))
        local = verdicts.get(key)
        if local is None:
            local = verdicts[key] = _is_local(module, installed)
        if local:
            chosen.append(name)
    for name in extra:
        if name not in sys.modules:
            raise ShippingError(f"ship_modules names {name!r}, which is not imported in this process; "
                                "import it in the steering script first")
        chosen.append(name)
    for name in chosen:
        try:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        except ValueError:
            pass  # not a module cloudpickle can ship by value (e.g. a namespace package)
    return chosen


def _without_algorithm_object(algorithm: Any) -> Any:
    """A copy without ``.algorithm``; methods bound to the original (CAF's default
    ``data_input`` is one) are bound to the copy, or they would drag the original along."""
    shipped = copy.copy(algorithm)
    shipped.algorithm = None
    for attribute, value in vars(shipped).items():
        if isinstance(value, types.MethodType) and value.__self__ is algorithm:
            setattr(shipped, attribute, types.MethodType(value.__func__, shipped))
    return shipped


def _pickling_failures(named: Mapping[str, Any]) -> dict:
    """``{name: error}`` for each of ``named``'s values that cannot be pickled, to say which part is at fault."""
    failures = {}
    for name, value in named.items():
        try:
            cloudpickle.dumps(value)
        except Exception as err:  # any pickling failure counts
            failures[name] = err
    return failures


class _SourcePickler(cloudpickle.Pickler):
    """cloudpickle, keeping the file name of the code it ships by value.

    cloudpickle writes ``<dynamic-code>`` as the file of every function it pickles by
    value, so that its output does not depend on where the code was defined. For a
    steering script's strategy that is the wrong trade: a traceback in the algorithm's
    log would name ``<dynamic-code>`` instead of the user's file and line, and could show
    no source line. The code objects are rebuilt exactly as cloudpickle rebuilds them,
    with the real file name, which the worker's traceback then reads where the file is
    visible (a shared file system, as CAF's output directory must be anyway).
    """

    dispatch_table = collections.ChainMap({types.CodeType: lambda code: _with_filename(code)},
                                          cloudpickle.Pickler.dispatch_table)


def _with_filename(code: types.CodeType) -> tuple:
    rebuild, args = cloudpickle.cloudpickle._code_reduce(code)
    return rebuild, tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _SourcePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _refuse_undeclared_cpp(name: str, obj: Any) -> None:
    """Refuses a C++ object whose class the workers cannot know, saying the two ways out."""
    slug = name.lower()
    raise ShippingError(
        f"algorithm {name!r} holds a C++ object of class {cpp.class_name(obj)}, which was declared only to this "
        "process's ROOT interpreter (it has no dictionary in a library): a worker cannot unpickle it. Either\n"
        f"  - name a function, importable on the workers, that builds it there:\n"
        f"      runner_for(factories={{{name!r}: \"my_calibration.algorithms:make_{slug}\"}})\n"
        "  - or declare the class on every worker before its strategies run, so that the object travels with its "
        "settings:\n"
        "      runner_for(preload=[\"my_calibration.algorithms:declare\"])   (or the site's runner: {preload: [...]})")


def pack(algorithm: Any, params: Mapping[str, Any], iov: Any, iteration: int,
         factory: Optional[Factory] = None, preload: Iterable[str] = ()) -> bytes:
    """The pickled StrategyJob for one algorithm, or a ShippingError that says how to fix it.

    ``preload`` is what the workers run before strategies: with it, a C++ object of a class
    declared only here may travel by value (the preload is trusted to declare its class).
    """
    name = getattr(algorithm, "name", repr(algorithm))
    built_factory = resolve_factory(factory, name) if factory is not None else None
    shipped = algorithm
    if built_factory is not None:
        shipped = _without_algorithm_object(algorithm)
    inner = getattr(shipped, "algorithm", None)
    holds_cpp = inner is not None and cpp.is_cpp_object(inner)
    if holds_cpp and not preload and not cpp.has_dictionary(inner):
        _refuse_undeclared_cpp(name, inner)
    try:
        if holds_cpp:
            with cpp.quiet_streaming():
                return _dumps(StrategyJob(shipped, dict(params), iov, iteration, built_factory))
        return _dumps(StrategyJob(shipped, dict(params), iov, iteration, built_factory))
    except Exception as err:
        settings = {**params, "iov": iov}
        for key, part_error in _pickling_failures(settings).items():
            raise ShippingError(f"the runner's {key} ({type(settings[key]).__name__}), which every strategy of the "
                                f"calibration receives, cannot be sent to a Dask worker: "
                                f"{type(part_error).__name__}: {part_error}") from None
        attributes = {a: getattr(shipped, a) for a in _ALGORITHM_PARTS if hasattr(shipped, a)}
        parts = [f".{a} ({type(e).__name__}: {e})" for a, e in _pickling_failures(attributes).items()] \
            or [f"({type(err).__name__}: {err})"]
        hint = ""
        if any(p.startswith(".algorithm ") for p in parts):
            hint = (f"\n  Its algorithm object cannot be pickled (a C++ CalibrationAlgorithm never can): name a "
                    f"function that builds it, importable on the workers, e.g.\n"
                    f"      cal.algorithms_runner = runner_for(factories={{{name!r}: "
                    f"\"my_calibration.algorithms:make_{name.lower()}\"}})\n"
                    f"  where make_{name.lower()}() returns the same algorithm object you passed to Calibration().")
        elif built_factory is None:
            hint = "\n  Make these parts picklable (plain data and module-level functions), or name a factory."
        raise ShippingError(f"algorithm {name!r} cannot be sent to a Dask worker: "
                            f"{'; '.join(parts)} cannot be pickled.{hint}") from None


def strategy_params(runner: Any) -> dict:
    """The exact keys CAF hands to ``strategy.setup_from_dict``."""
    return {
        "database_chain": runner.database_chain,
        "dependent_databases": runner.dependent_databases,
        "output_dir": runner.output_dir,
        "output_database_dir": runner.output_database_dir,
        "input_files": runner.input_files,
        "ignored_runs": getattr(runner, "ignored_runs", []),
    }


def log_file(output_dir: Union[str, os.PathLike], algorithm_name: str) -> Path:
    """Where CAF's algorithm logging writes: ``<output_dir>/<AlgorithmName>_stdout``."""
    return Path(output_dir) / f"{algorithm_name}_stdout"
