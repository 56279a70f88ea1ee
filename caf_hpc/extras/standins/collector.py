"""What a collector job runs, without basf2: a "path" of collector functions, and ``run_collector_path.py``'s work.

In basf2 a collector is a module on a path that CAF pickles into the job's sandbox
(``<Collector>.path``, and ``pre_collector.path`` for modules before it);
``run_collector_path.py`` reads them with ``collector_config.json`` (the database chain)
and the job's input list (``__BACKEND_INPUT_FILES__.json``), runs the path over the input
files and writes ``CollectorOutput.root``. Here a path holds collector functions named
``"package.module:function"``, each called as ``function(input_files, output_file,
database_chain, **params)``; the rest is the same, files and names included.
"""
from __future__ import annotations

import glob
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ...function_names import resolve_function

OUTPUT_FILE = "CollectorOutput.root"
PRE_COLLECTOR_PATH = "pre_collector.path"
#: The script CAF puts into every collector job's sandbox.
RUN_COLLECTOR_PATH = Path(__file__).with_name("run_collector_path.py")


class Module:
    """A collector module: a function ``"package.module:function"`` and its parameters (basf2's ``register_module``).

    As a basf2 module, it has a ``name()`` (CAF names the job's path file after it) and
    parameters set with ``param``.
    """

    def __init__(self, function: str, **params: Any) -> None:
        resolve_function(function)  # a typo shows when the module is made, not in a thousand jobs
        self.function = function
        self.params = dict(params)
        self._name = function.rpartition(":")[2]

    def name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self._name = name

    def param(self, key: str, value: Any) -> None:
        self.params[key] = value

    def __repr__(self) -> str:
        return f"Module({self.function!r}, {self.params!r})"


def register_module(function: str, **params: Any) -> Module:
    """basf2's ``register_module`` for a stand-in collector function ``"package.module:function"``."""
    return Module(function, **params)


class CollectorPath:
    """A basf2 path of collector functions (``"package.module:function"`` and their parameters)."""

    def __init__(self) -> None:
        self.modules: list = []

    def add_module(self, module: str | Module, **params: Any) -> CollectorPath:
        if isinstance(module, Module):
            self.modules.append((module.function, {**module.params, **params}))
            return self
        resolve_function(module)  # a typo shows when the path is built, not in a thousand jobs
        self.modules.append((module, params))
        return self

    def add_path(self, other: CollectorPath) -> None:
        self.modules.extend(other.modules)

    def process(self, input_files: list, output_file: str, database_chain: list) -> None:
        for function, params in self.modules:
            resolve_function(function)(input_files, output_file, database_chain, **params)


def create_path() -> CollectorPath:
    return CollectorPath()


def write_path(path: CollectorPath, filename: str | os.PathLike) -> Path:
    """Pickles ``path`` as CAF does into a job's sandbox."""
    with open(filename, "wb") as handle:
        pickle.dump(path, handle)
    return Path(filename)


def _read_path(filename: str) -> CollectorPath:
    with open(filename, "rb") as handle:
        return pickle.load(handle)


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "file" else uri


def run_collectors() -> None:
    """``run_collector_path.py``: the job's paths over its input files, into ``CollectorOutput.root``."""
    with open("collector_config.json") as handle:
        config = json.load(handle)
    path = create_path()
    if os.path.exists(PRE_COLLECTOR_PATH):
        path.add_path(_read_path(PRE_COLLECTOR_PATH))
    collectors = sorted(p for p in glob.glob("./*.path") if Path(p).name != PRE_COLLECTOR_PATH)
    if not collectors:
        print("[FATAL] Couldn't find any pickle files for collector path!", file=sys.stderr)
        sys.exit(1)
    for filename in collectors:
        path.add_path(_read_path(filename))
    with open("__BACKEND_INPUT_FILES__.json") as handle:
        input_files = [_local_path(uri) for uri in json.load(handle)]
    print(f"[INFO] collecting {len(input_files)} input file(s) into {OUTPUT_FILE}")
    path.process(input_files, OUTPUT_FILE, config.get("database_chain", []))


# --------------------------------------------------------------------------- collectors for tests and examples
def count_entries(input_files: list, output_file: str, database_chain: list, *, sleep: float = 0.0,
                  fail: bool = False) -> None:
    """Counts the lines of every input file into ``output_file`` (JSON): the smallest real collector."""
    import time

    if fail:
        raise RuntimeError("this collector was asked to fail")
    if sleep:
        time.sleep(sleep)
    counts = {Path(f).name: sum(1 for _ in open(f)) for f in input_files}
    Path(output_file).write_text(json.dumps({"entries": counts}))
