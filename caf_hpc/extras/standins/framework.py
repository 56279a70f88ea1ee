"""``caf.framework`` without basf2: ``Algorithm``, the database descriptions, ``Collection``, ``Calibration``.

``Collection`` and ``Calibration`` hold what a steering script sets, with CAF's names,
defaults and checks; a ``Calibration`` is a thread of its own, whose ``run()`` is CAF's
sequence of states (``machine.py``). ``CAF`` (``caf.py``) runs calibrations.
"""
from __future__ import annotations

import glob
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .backends import MaxFilesSplitter, MaxSubjobsSplitter
from .calibration_algorithm import CalibrationAlgorithm
from .collector import Module, register_module
from .strategies import AlgorithmStrategy, SingleIOV

B2 = logging.getLogger("caf")


class Algorithm:
    """Wraps a calibration algorithm object with its strategy, parameters and hooks.

    Like the real class, ``.algorithm`` holds the algorithm object itself (in basf2 a
    C++ ``CalibrationAlgorithm``), ``.name`` its class name, ``.strategy`` the
    strategy *class*, ``.params`` the strategy parameters and ``.pre_algorithm`` an
    optional ``function(algorithm, iteration)`` called before each execution.
    """

    def __init__(self, algorithm: Any, data_input: Callable | None = None,
                 pre_algorithm: Callable | None = None):
        self.algorithm = algorithm
        self.name = getattr(algorithm, "name", None) or type(algorithm).__name__
        self.data_input = data_input or self.default_inputdata_setup
        self.pre_algorithm = pre_algorithm
        self.strategy: type[AlgorithmStrategy] = SingleIOV
        self.params: dict = {}

    def default_inputdata_setup(self, input_file_paths: Iterable[str | Path]) -> None:
        """Hands the collector output files to the algorithm (CAF's default data input)."""
        self.algorithm.setInputFileNames([str(p) for p in input_file_paths])

    def __repr__(self) -> str:
        return f"Algorithm({self.name}, strategy={self.strategy.__name__})"


class LocalDatabase:
    """A local database (a ``database.txt`` and its payload files) in a calibration's chain."""

    db_type = "local"

    def __init__(self, filepath: str | Path, payload_dir: str | Path | None = None) -> None:
        self.filepath = Path(filepath)
        self.payload_dir = Path(payload_dir) if payload_dir else self.filepath.parent

    def __repr__(self) -> str:
        return f"LocalDatabase({str(self.filepath)!r})"


class CentralDatabase:
    """A global tag of the central conditions database in a calibration's chain."""

    db_type = "central"

    def __init__(self, global_tag: str) -> None:
        self.global_tag = global_tag

    def __repr__(self) -> str:
        return f"CentralDatabase({self.global_tag!r})"


class Collection:
    """One collector over its input files: CAF's ``Collection`` (a Calibration has a ``"default"`` one).

    ``collector`` is a stand-in collector module (``collector.register_module``) or the name
    of its function (``"package.module:function"``), as CAF takes a basf2 module or its name.
    """

    default_max_collector_jobs = 1000
    job_config = "collector_job.json"

    def __init__(self, collector: Any = None, input_files: Any = None, pre_collector_path: Any = None,
                 database_chain: list | None = None, output_patterns: list | None = None,
                 max_files_per_collector_job: int | None = None, max_collector_jobs: int | None = None,
                 backend_args: dict | None = None) -> None:
        self.collector = collector
        self.input_files = input_files or []
        self.files_to_iovs: dict = {}
        self.pre_collector_path = pre_collector_path or None
        self.output_patterns = list(output_patterns) if output_patterns else ["CollectorOutput.root"]
        self.splitter: Any = None
        if max_files_per_collector_job and max_collector_jobs:
            raise SystemExit("[FATAL] Cannot set both 'max_files_per_collector_job' and 'max_collector_jobs' "
                             "of a collection!")  # CAF's B2FATAL
        if max_files_per_collector_job:
            self.max_files_per_collector_job = max_files_per_collector_job
        else:
            self.max_collector_jobs = max_collector_jobs or self.default_max_collector_jobs
        self.backend_args = dict(backend_args or {})
        self.database_chain = list(database_chain) if database_chain else []  # no default global tag here

    @property
    def collector(self) -> Any:
        return self._collector

    @collector.setter
    def collector(self, collector: Any) -> None:
        if isinstance(collector, str):
            collector = register_module(collector)
        if collector and not isinstance(collector, Module):
            B2.error("Collector needs to be either a Module or the name of such a module")
        self._collector = collector

    @property
    def input_files(self) -> list:
        return self._input_files

    @input_files.setter
    def input_files(self, value: Any) -> None:
        if isinstance(value, (str, Path)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise TypeError("Input files must be a list or string")
        self._input_files = [uri for pattern in value for uri in _uris(str(pattern))]

    @property
    def max_collector_jobs(self) -> int | None:
        return getattr(self.splitter, "max_subjobs", None)

    @max_collector_jobs.setter
    def max_collector_jobs(self, value: int | None) -> None:
        self.splitter = None if value is None else MaxSubjobsSplitter(max_subjobs=value)

    @property
    def max_files_per_collector_job(self) -> int | None:
        return getattr(self.splitter, "max_files_per_subjob", None)

    @max_files_per_collector_job.setter
    def max_files_per_collector_job(self, value: int | None) -> None:
        self.splitter = None if value is None else MaxFilesSplitter(max_files_per_subjob=value)

    def reset_database(self) -> None:
        self.database_chain = []

    def use_central_database(self, global_tag: str) -> None:
        self.database_chain.append(CentralDatabase(global_tag))

    def use_local_database(self, filename: Any, directory: Any = "") -> None:
        self.database_chain.append(LocalDatabase(filename, directory or None))

    def is_valid(self) -> bool:
        return bool(self.collector and self.input_files)


def _uris(pattern: str) -> list:
    """CAF's ``uri_list_from_input_file``: a local path or glob becomes the ``file://`` URIs of its files."""
    parsed = urlparse(pattern)
    if parsed.scheme not in ("", "file"):
        return [pattern]
    local = parsed.path if parsed.scheme == "file" else pattern
    return [Path(f).absolute().as_uri() for f in sorted(glob.glob(local))]


def _is_algorithm(value: Any) -> bool:
    from . import cpp

    return isinstance(value, CalibrationAlgorithm) or cpp.is_cpp_object(value)


class Calibration(threading.Thread):
    """A collector (one or more ``Collection``) and the algorithms run over its output: CAF's ``Calibration``.

    Attributes and defaults are CAF's: ``algorithms_runner`` (CAF's default runner is its
    ``SeqAlgorithmsRunner``, which has no stand-in: set one), ``backend`` (None: the CAF's),
    ``heartbeat`` = 3 s between checks of the collector jobs, ``collector_full_update_interval``
    = 30 s, ``max_iterations`` (None: the CAF's default, 5), ``ignored_runs``, ``strategies``,
    ``database_chain``, ``depends_on``. ``run()`` is the calibration's thread (``machine.py``).
    """

    end_state = "completed"
    fail_state = "failed"
    alg_output_dir = "algorithm_output"
    checkpoint_states = ["init", "collector_completed", "completed"]
    default_collection_name = "default"

    def __init__(self, name: str, collector: Any = None, algorithms: Any = None, input_files: Any = None,
                 pre_collector_path: Any = None, database_chain: list | None = None,
                 output_patterns: list | None = None, max_files_per_collector_job: int | None = None,
                 max_collector_jobs: int | None = None, backend_args: dict | None = None) -> None:
        self.collections: dict = {}
        self._algorithms: list = []
        self.add_collection(self.default_collection_name,
                            Collection(collector, input_files, pre_collector_path, database_chain, output_patterns,
                                       max_files_per_collector_job, max_collector_jobs, backend_args))
        super().__init__()
        self.name = name
        self.future_dependencies: list = []
        self.dependencies: list = []
        self.iov: Any = None
        self.output_database_dir = ""
        self.state = "init"
        self.iteration = 0
        self.save_payloads = True
        self.jobs_to_submit: list = []
        if algorithms:
            self.algorithms = algorithms
        self.results: dict = {}
        self.max_iterations: int | None = None
        self.ignored_runs: list | None = None
        self.database_chain = list(database_chain) if database_chain else []
        self.algorithms_runner: Any = None
        self.backend: Any = None
        self.collector_full_update_interval = 30
        self.heartbeat: float = 3
        self.machine: Any = None
        self.fatal: str | None = None  # a B2FATAL in this thread: CAF.run ends the program with it

    # ------------------------------------------------------------------ set-up, as CAF's
    def add_collection(self, name: str, collection: Collection) -> None:
        if name in self.collections:
            B2.warning("A Collection with the name '%s' already exists in this Calibration. It has not been added."
                       "Please use another name.", name)
            return
        self.collections[name] = collection

    def depends_on(self, calibration: Calibration) -> None:
        if self.name == calibration.name:
            B2.warning("Tried to add %s as a dependency for %s but they have the same name.Dependency was not "
                       "added.", calibration, self)
            return
        if calibration not in self.dependencies:
            self.dependencies.append(calibration)
        if self not in calibration.dependencies:
            calibration.future_dependencies.append(self)

    def dependencies_met(self) -> bool:
        return all(dependency.state == dependency.end_state for dependency in self.dependencies)

    def failed_dependencies(self) -> list:
        return [dependency for dependency in self.dependencies if dependency.state == self.fail_state]

    def is_valid(self) -> bool:
        if not self.algorithms:
            B2.warning("Empty algorithm list for %s.", self.name)
            return False
        if not any(collection.is_valid() for collection in self.collections.values()):
            B2.warning("No valid Collections for %s.", self.name)
            return False
        granularities = {c.collector.params["granularity"] for c in self.collections.values()
                         if c.is_valid() and "granularity" in c.collector.params}
        if len(granularities) > 1:
            B2.warning("Multiple different granularities set for the Collections in this Calibration.")
            return False
        for algorithm in self.algorithms:
            if any(g not in algorithm.strategy.allowed_granularities for g in granularities):
                B2.warning("Selected strategy for %s does not match a collector's granularity.", algorithm.name)
                return False
        return True

    def _apply_calibration_defaults(self, defaults: dict) -> None:
        for key, value in defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    def reset_database(self, apply_to_default_collection: bool = True) -> None:
        self.database_chain = []
        if apply_to_default_collection and self.default_collection_name in self.collections:
            self.collections[self.default_collection_name].reset_database()

    def use_central_database(self, global_tag: str, apply_to_default_collection: bool = True) -> None:
        self.database_chain.append(CentralDatabase(global_tag))
        if apply_to_default_collection and self.default_collection_name in self.collections:
            self.collections[self.default_collection_name].use_central_database(global_tag)

    def use_local_database(self, filename: Any, directory: Any = "", apply_to_default_collection: bool = True) -> None:
        self.database_chain.append(LocalDatabase(filename, directory or None))
        if apply_to_default_collection and self.default_collection_name in self.collections:
            self.collections[self.default_collection_name].use_local_database(filename, directory)

    # ------------------------------------------------------------------ the default collection's attributes
    def _default(self, attribute: str) -> Any:
        collection = self.collections.get(self.default_collection_name)
        if collection is None:
            B2.warning("You tried to get the attribute '%s' from the Calibration '%s', but the default collection "
                       "doesn't exist.", attribute, self.name)
            return None
        return getattr(collection, attribute)

    def _set_default(self, attribute: str, value: Any) -> None:
        collection = self.collections.get(self.default_collection_name)
        if collection is None:
            B2.warning("You tried to set the attribute '%s' from the Calibration '%s', but the default collection "
                       "doesn't exist.", attribute, self.name)
            return
        setattr(collection, attribute, value)

    collector = property(lambda self: self._default("collector"), lambda self, v: self._set_default("collector", v))
    input_files = property(lambda self: self._default("input_files"),
                           lambda self, v: self._set_default("input_files", v))
    files_to_iovs = property(lambda self: self._default("files_to_iovs"),
                             lambda self, v: self._set_default("files_to_iovs", v))
    pre_collector_path = property(lambda self: self._default("pre_collector_path"),
                                  lambda self, v: self._set_default("pre_collector_path", v))
    output_patterns = property(lambda self: self._default("output_patterns"),
                               lambda self, v: self._set_default("output_patterns", v))
    max_files_per_collector_job = property(lambda self: self._default("max_files_per_collector_job"),
                                           lambda self, v: self._set_default("max_files_per_collector_job", v))
    max_collector_jobs = property(lambda self: self._default("max_collector_jobs"),
                                  lambda self, v: self._set_default("max_collector_jobs", v))
    backend_args = property(lambda self: self._default("backend_args"),
                            lambda self, v: self._set_default("backend_args", v))

    # ------------------------------------------------------------------ algorithms and their strategies
    @property
    def algorithms(self) -> list:
        return self._algorithms

    @algorithms.setter
    def algorithms(self, value: Any) -> None:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and not value:
            return
        wrapped = []
        for algorithm in values:
            if not _is_algorithm(algorithm):
                B2.error("Something other than CalibrationAlgorithm instance passed in (%s). Algorithm needs to "
                         "inherit from Belle2::CalibrationAlgorithm", type(algorithm))
                if not isinstance(value, (list, tuple)):
                    return
                continue
            wrapped.append(Algorithm(algorithm))
        self._algorithms = wrapped
        self.strategies = SingleIOV

    @property
    def pre_algorithms(self) -> list:
        return [algorithm.pre_algorithm for algorithm in self.algorithms]

    @pre_algorithms.setter
    def pre_algorithms(self, value: Any) -> None:
        if not value:
            B2.error("Something evaluated as False passed in as pre_algorithm function.")
        elif isinstance(value, (list, tuple)):
            if len(value) != len(self.algorithms):
                B2.error("Number of functions and number of algorithms doesn't match.")
                return
            for function, algorithm in zip(value, self.algorithms, strict=True):
                algorithm.pre_algorithm = function
        else:
            for algorithm in self.algorithms:
                algorithm.pre_algorithm = value

    @property
    def strategies(self) -> list:
        return [algorithm.strategy for algorithm in self.algorithms]

    @strategies.setter
    def strategies(self, value: Any) -> None:
        if not value:
            B2.error("Something evaluated as False passed in as a strategy.")
        elif isinstance(value, (list, tuple)):
            # CAF's list setter zips its strategies *module* instead of the list and raises TypeError:
            # a script that works here must work in basf2, so this fails the same way, saying how to avoid it
            raise TypeError("'module' object is not iterable: CAF's Calibration.strategies cannot be set to a "
                            "list (a defect of caf.framework); set algorithm.strategy on each of cal.algorithms")
        else:
            for algorithm in self.algorithms:
                algorithm.strategy = value

    def __repr__(self) -> str:
        return self.name

    # ------------------------------------------------------------------ the calibration's thread
    def run(self) -> None:
        """CAF's ``Calibration.run``: collector, algorithms, iterate or finish, in this thread."""
        from .machine import CalibrationMachine, MachineError

        B2.info("Initial status of %s found to be state=%s, iteration=%s", self.name, self.state, self.iteration)
        self.machine = CalibrationMachine(self, iov_to_calibrate=self.iov, iteration=self.iteration)
        while self.state not in (self.end_state, self.fail_state):
            if self.state == "init":
                try:
                    B2.info("Attempting collector submission for calibration %s.", self.name)
                    self.machine.submit_collector()
                except Exception as err:  # CAF: B2FATAL, which ends the program
                    self.fatal = str(err)
                    B2.critical(str(err))
                    return
                self.machine.poll_collector()
            if self.state == "collector_failed":
                self.machine.fail_fully()
                return
            try:
                B2.info("Attempting to run algorithms for calibration %s.", self.name)
                self.machine.run_algorithms()
            except MachineError as err:
                B2.error(str(err))
                self.machine.fail()  # not a transition out of collector_completed: ends this thread, as CAF's
            if self.machine.state == "algorithms_failed":
                self.machine.fail_fully()
                return
