"""Modules sent from the steering process, imported here for real, from their source.

A factory or a preload entry named ``module:function`` runs with its module imported on
the worker, its top-level code included: a user's module that declares its C++ classes
with ``ROOT.gInterpreter.Declare`` when it is imported needs that code to run in the
process that calls the function. An installed module (site-packages, a basf2 release) the
worker imports as usual. A module the workers cannot import by themselves (beside the
steering script, not installed) arrives as source (``protocol.ModuleSource``), with the
local modules of its directory that the steering process had imported (its package, the
helpers it imports): a batch worker in a container may not see the steering directory,
so the source is what travels, never a path.

A finder first on ``sys.meta_path`` serves them under their own names, so an import is
an import: ``__name__``, ``__package__``, relative imports, ``__file__`` (the path in the
steering process, readable where the file system is shared), tracebacks with their source
lines (from the loader where the file is not visible), and the module's top-level code runs
once per process. What the finder does not have (a submodule the steering process never
imported) is looked for as usual, in the package's directory where the worker sees it.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .. import function_names
from ..protocol import Factory, ModuleSource


class _SourceLoader(importlib.abc.InspectLoader):
    """Executes a shipped module's source, compiled under its steering-side file name."""

    def __init__(self, shipped: ModuleSource) -> None:
        self.shipped = shipped

    def is_package(self, fullname: str) -> bool:
        return self.shipped.is_package

    def get_source(self, fullname: str) -> str | None:
        return self.shipped.source

    def get_code(self, fullname: str) -> Any:
        return compile(self.shipped.source or "", self.shipped.path, "exec", dont_inherit=True)


class ShippedFinder(importlib.abc.MetaPathFinder):
    """Finds the modules sent with a strategy or a preload list, before anything else is searched."""

    def __init__(self) -> None:
        self.modules: dict[str, ModuleSource] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        shipped = self.modules.get(fullname)
        if shipped is None:
            return None
        if shipped.source is None:  # a namespace package: only a directory
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [shipped.path]
            return spec
        spec = importlib.machinery.ModuleSpec(fullname, _SourceLoader(shipped), origin=shipped.path,
                                              is_package=shipped.is_package)
        spec.has_location = True  # __file__ is the steering side's file: tracebacks and linecache name it
        if shipped.is_package:
            spec.submodule_search_locations = [os.path.dirname(shipped.path)]
        return spec


_finder: ShippedFinder | None = None
_lock = threading.Lock()


def install(modules: Iterable[ModuleSource]) -> None:
    """Makes ``modules`` importable in this process under their own names (first on the import path)."""
    global _finder
    modules = tuple(modules)
    if not modules:
        return
    with _lock:
        if _finder is None:
            _finder = ShippedFinder()
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        for shipped in modules:
            _finder.modules[shipped.name] = shipped
    importlib.invalidate_caches()


def run_preload(entry: str) -> None:
    """One preload entry: ``module`` is imported, ``module:function`` imported and then called."""
    if ":" in entry:
        function_names.resolve_function(entry)()
    else:
        importlib.import_module(entry)


def load(factory: Factory) -> Callable[[], Any]:
    """A ``protocol.Factory``'s function, its modules installed and its module imported here first."""
    install(factory.modules)
    return function_names.resolve_function(factory.spec)
