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

A factory or preload entry named ``module:function`` runs on the worker with its module
imported there, top-level code included (a user's module may declare its C++ classes
when it is imported). An installed module the worker imports itself; a module beside the
steering script travels as its source, with the local modules of its directory that this
process imported (``module_sources``), and is imported from it under its own name
(``caf_hpc.child.modules``). A function passed itself travels by value, without its
module's top-level code.
"""
from __future__ import annotations

import collections
import copy
import importlib
import importlib.util
import io
import os
import pickle
import sys
import sysconfig
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import cloudpickle

from .. import function_names, private_interfaces, protocol, root_helpers
from ..protocol import StrategyCall

#: A factory as the steering script gives it: a ``module:function`` name, or the callable itself.
FactorySpec = str | Callable[[], Any]

#: The parts of a CAF Algorithm that travel to the worker.
_ALGORITHM_PARTS = ("algorithm", "strategy", "params", "pre_algorithm", "data_input")
_OWN_PACKAGES = {"caf_hpc", "caf", "basf2", "ROOT", "cloudpickle"}
_INSTALLED_MARKERS = ("site-packages", "dist-packages")


class ShippingError(ValueError):
    """An algorithm cannot be sent to a Dask worker; the message says how to make it shippable."""


def resolve_factory(spec: FactorySpec, algorithm_name: str) -> Callable[[], Any] | protocol.Factory:
    """A callable as it is (it travels by value), or ``"package.module:function"`` as a
    ``protocol.Factory`` that the worker calls with the module imported there.

    The module is imported here too, to check that the function exists and to collect
    the sources of a module the workers cannot import themselves.
    """
    if callable(spec):
        return spec
    what = f"factory {spec!r} for algorithm {algorithm_name!r}"
    try:
        function_names.check_form(spec)
    except function_names.FunctionNameError:
        raise ShippingError(f"{what} is not of the form {function_names.FORM}") from None
    module_name = function_names.module_name(spec)
    module = _import_for_workers(module_name, what)
    try:
        function_names.resolve_function(spec)
    except function_names.FunctionNameError:
        raise ShippingError(f"{what}: module {module_name!r} has no function {spec.partition(':')[2]!r}") from None
    return protocol.Factory(spec, module_sources(module, what))


def preload_for(entries: Iterable[str]) -> protocol.Preload:
    """The runner's ``preload`` as the workers get it: each entry, and the source of each entry's
    module that lives beside the steering script (imported here to find it and what it imports).

    An entry whose module cannot be found here is left to the workers' own software (a
    worker image may have what the steering host lacks); an installed one they import themselves.
    """
    entries = tuple(entries)
    shipped: dict = {}
    for entry in entries:
        module_name = function_names.module_name(entry)
        what = f"preload entry {entry!r}"
        _refuse_main(module_name, what)
        module = sys.modules.get(module_name)
        if module is None:
            try:
                spec = importlib.util.find_spec(module_name)
            except (ImportError, ValueError):
                spec = None
            if spec is None or not spec.origin or not _is_local_file(module_name, spec.origin, _installed_roots()):
                continue
            module = _import_for_workers(module_name, what)
        for source in module_sources(module, what):
            shipped[source.name] = source
    return protocol.Preload(entries, tuple(shipped.values()))


def _refuse_main(module_name: str, what: str) -> None:
    """The steering script itself is no module a worker can import: its top-level code is the calibration."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    is_main = module_name.split(".")[0] == "__main__"
    if not is_main and main_file and module_name not in sys.modules:
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        is_main = bool(spec and spec.origin and os.path.realpath(spec.origin) == os.path.realpath(main_file))
    if is_main:
        raise ShippingError(
            f"{what} names the steering script itself, which a worker cannot import: its top-level code is the "
            "calibration. Move the function (and the code it needs, such as gInterpreter.Declare calls) into a "
            "module beside the script, e.g. my_algorithms.py, and name 'my_algorithms:function'; its module is "
            "then imported on every worker, its top-level code included")


def _import_for_workers(module_name: str, what: str) -> types.ModuleType:
    _refuse_main(module_name, what)
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ShippingError(f"{what}: cannot import module {module_name!r} ({err}). Put it beside the steering "
                            "script or on PYTHONPATH, or install it.") from None


def _top_directory(name: str, file: str) -> Path:
    """The directory a module is imported from (the sys.path entry): for ``a.b.c`` in ``/x/a/b/c.py``, ``/x``."""
    path = Path(file).resolve()
    depth = name.count(".") + (1 if path.stem == "__init__" else 0)
    return path.parents[depth]


#: Module sources read, by (file, mtime, size): a run packs every algorithm, each iteration.
_sources: dict = {}


def _read_source(file: str) -> str:
    stat = os.stat(file)
    key = (file, stat.st_mtime_ns, stat.st_size)
    if key not in _sources:
        _sources[key] = importlib.util.decode_source(Path(file).read_bytes())
    return _sources[key]


def module_sources(module: types.ModuleType, what: str = "") -> tuple:
    """The ``ModuleSource`` that let a worker import ``module``; empty for one it imports itself.

    A module that is installed (standard library, site-packages, a basf2 release) needs
    nothing. A local one (beside the steering script, not installed) travels as source,
    with the other local modules imported from the same directory (its package and its
    submodules, the helpers beside it that it imports), so that its imports resolve on a
    worker that cannot see that directory. What cannot be imported from source on a worker
    is refused here, before anything is submitted.
    """
    installed = _installed_roots()
    name = module.__name__
    file = getattr(module, "__file__", None)
    label = what or f"module {name!r}"
    if getattr(module, "__spec__", None) is None and name not in sys.builtin_module_names:
        raise ShippingError(f"{label}: module {name!r} was not imported from a file (made at run time?), so no "
                            "worker can import it: put its code in a module file beside the steering script")
    if not file or not _is_local_file(name, file, installed):
        return ()
    root = _top_directory(name, file)
    family: dict[str, str] = {}
    for other_name, other in list(sys.modules.items()):
        other_file = getattr(other, "__file__", None)
        if other is None or not other_file or not _verdict(other_name, other, installed):
            continue
        try:
            same_root = _top_directory(other_name, other_file) == root
        except IndexError:  # a module whose name does not match its place (loaded by path)
            same_root = False
        if same_root or other_name == name:
            family[other_name] = other_file
    sources = []
    for other_name, found_file in family.items():
        other_file = os.path.abspath(found_file)
        if not other_file.endswith(".py"):
            raise ShippingError(
                f"{label}: module {other_name!r} ({other_file}), which the workers cannot import themselves "
                f"(it is not installed), has no Python source to send them (a compiled extension or bytecode). "
                "Install it into the software environment the workers use (site-packages, a basf2 release, the "
                "worker image), or keep it out of the modules beside the steering script")
        try:
            source = _read_source(other_file)
        except (OSError, SyntaxError, UnicodeDecodeError) as err:
            raise ShippingError(f"{label}: cannot read the source of module {other_name!r} ({other_file}) to send "
                                f"it to the workers: {err}") from None
        sources.append(protocol.ModuleSource(other_name, other_file, source, Path(other_file).stem == "__init__"))
    for parent in {n.rsplit(".", i)[0] for n in family for i in range(1, n.count(".") + 1)} - set(family):
        # a namespace package (a directory without __init__.py) around local modules: a directory on the worker too
        sources.append(protocol.ModuleSource(parent, str(root.joinpath(*parent.split("."))), None, True))
    return tuple(sorted(sources, key=lambda source: source.name))


#: Where a basf2 release and a user's local release are (``_installed_roots``).
_RELEASE_VARIABLES = ("BELLE2_RELEASE_DIR", "BELLE2_LOCAL_DIR", "BELLE2_EXTERNALS_DIR")
#: ``_installed_roots`` by the values of ``_RELEASE_VARIABLES``: the interpreter's own paths do not change while
#: it runs, and finding and resolving them cost every ``run()`` half a millisecond.
_roots: dict = {}


def _installed_roots() -> tuple[Path, ...]:
    """Directories whose modules every worker of the same software environment imports itself:
    the standard library, site-packages, and a basf2 release."""
    releases = tuple(os.environ.get(variable) for variable in _RELEASE_VARIABLES)
    found = _roots.get(releases)
    if found is None:
        roots = {Path(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
                 if (p := sysconfig.get_paths().get(key))}
        roots.update(Path(release) for release in releases if release)
        found = _roots[releases] = tuple(sorted(r.resolve() for r in roots))
    return found


def _is_local(module: Any, installed: Iterable[Path]) -> bool:
    """True for user code (a steering script's helpers, a test suite): shipped by value."""
    return _is_local_file(getattr(module, "__name__", ""), getattr(module, "__file__", None), installed)


def _is_local_file(name: str, file: str | None, installed: Iterable[Path]) -> bool:
    """``_is_local`` for a module's name and file, before it is imported."""
    if not file or name == "__main__" or name.split(".")[0] in _OWN_PACKAGES:
        return False
    path = Path(file).resolve()
    if any(marker in path.parts for marker in _INSTALLED_MARKERS):
        return False
    return not any(root == path.parent or root in path.parents for root in installed)


#: ``_is_local``'s verdicts by installed roots, then by (module name, file).
_verdicts: dict = {}


def _verdict(name: str, module: Any, installed: tuple) -> bool:
    """``_is_local(module)``, judged once per module."""
    verdicts = _verdicts.setdefault(installed, {})
    key = (name, getattr(module, "__file__", None))
    local = verdicts.get(key)
    if local is None:
        local = verdicts[key] = _is_local(module, installed)
    return local


def register_local_modules(extra: Iterable[str] = ()) -> list[str]:
    """Makes cloudpickle ship user modules by value; returns their names.

    ``extra`` names further modules (imported already) that the workers cannot import.
    Each module is judged once: resolving the paths of the ~700 modules a steering
    process holds took 27 ms, at the start of every ``run()``; the scan that remains
    looks each module up once (2 ms per ``run()`` as calls of ``_verdict``).
    """
    installed = _installed_roots()
    verdicts = _verdicts.setdefault(installed, {})
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


def modules_by_reference(algorithm: Any, by_value: Iterable[str] | None = None) -> tuple[str, ...]:
    """The modules a worker imports to unpickle ``algorithm``'s job, of those it imports itself: the modules of
    its strategy class, of its CAF ``Algorithm`` class and of a pure-Python algorithm object's class, with their
    base classes, that travel by reference (installed: a basf2 release, site-packages).

    The worker's fork server imports them once, so that each strategy's process does not import them again
    (``caf_hpc.worker.forkserver``). ``__main__`` and the modules shipped by value (``by_value``, cloudpickle's
    registry unless given: what ``register_local_modules`` chose) are left out: they travel with the job.
    """
    registered = set(cloudpickle.list_registry_pickle_by_value() if by_value is None else by_value)
    inner = getattr(algorithm, "algorithm", None)
    classes = [type(algorithm), getattr(algorithm, "strategy", None),
               None if inner is None or root_helpers.is_cpp_object(inner) else type(inner)]
    names: dict[str, None] = {}
    for cls in classes:
        for base in getattr(cls, "__mro__", ()) if isinstance(cls, type) else ():
            name = getattr(base, "__module__", None)
            if not isinstance(name, str) or name in names or name in ("builtins", "__main__") \
                    or name not in sys.modules:
                continue
            parts = name.split(".")
            if not any(".".join(parts[:i]) in registered for i in range(1, len(parts) + 1)):
                names[name] = None
    return tuple(names)


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
    """cloudpickle, keeping the file name of the code it ships by value, and rebuilding C++ objects
    with ROOT started (``root_helpers.expand``).

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

    def reducer_override(self, obj: Any) -> Any:
        """A C++ object is rebuilt through ``root_helpers.expand``, which starts ROOT in the worker's process first."""
        if root_helpers.is_cpp_object(obj):
            return root_helpers.reduce(obj)
        return super().reducer_override(obj)


def _with_filename(code: types.CodeType) -> tuple:
    rebuild, args = private_interfaces.code_reduce(code)
    return rebuild, tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _SourcePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _refuse_undeclared_cpp(name: str, obj: Any) -> NoReturn:
    """Refuses a C++ object whose class the workers cannot know, saying the two ways out."""
    slug = name.lower()
    raise ShippingError(
        f"algorithm {name!r} holds a C++ object of class {root_helpers.class_name(obj)}, which was declared only to "
        "this process's ROOT interpreter (it has no dictionary in a library): a worker cannot unpickle it. Either\n"
        f"  - name a function that builds it there, in a module of yours (installed, or beside the steering "
        f"script), which every worker imports, its top-level code included:\n"
        f"      runner_for(factories={{{name!r}: \"my_calibration.algorithms:make_{slug}\"}})\n"
        "  - or declare the class on every worker before its strategies run, so that the object travels with its "
        "settings:\n"
        "      runner_for(preload=[\"my_calibration.algorithms:declare\"])   (or the site's runner: {preload: [...]})")


def pack(algorithm: Any, params: Mapping[str, Any], iov: Any, iteration: int,
         factory: FactorySpec | None = None, preload: Iterable[str] = ()) -> bytes:
    """The pickled StrategyCall for one algorithm, or a ShippingError that says how to fix it.

    ``preload`` is what the workers run before strategies: with it, a C++ object of a class
    declared only here may travel by value (the preload is trusted to declare its class).
    """
    name = getattr(algorithm, "name", repr(algorithm))
    built_factory = resolve_factory(factory, name) if factory is not None else None
    shipped = algorithm
    if built_factory is not None:
        shipped = _without_algorithm_object(algorithm)
    inner = getattr(shipped, "algorithm", None)
    holds_cpp = inner is not None and root_helpers.is_cpp_object(inner)
    if holds_cpp and not preload and not root_helpers.has_dictionary(inner):
        _refuse_undeclared_cpp(name, inner)
    try:
        if holds_cpp:
            with root_helpers.quiet_streaming():
                return _dumps(StrategyCall(shipped, dict(params), iov, iteration, built_factory))
        return _dumps(StrategyCall(shipped, dict(params), iov, iteration, built_factory))
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
            hint = (f"\n  Its algorithm object cannot be pickled: name a function that builds it, in a module "
                    f"of yours (installed, or beside the steering script) that the workers import, e.g.\n"
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


def log_file(output_dir: str | os.PathLike, algorithm_name: str) -> Path:
    """Where CAF's algorithm logging writes: ``<output_dir>/<AlgorithmName>_stdout``."""
    return Path(output_dir) / f"{algorithm_name}_stdout"
