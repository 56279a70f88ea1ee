"""``caf.framework``'s Algorithm wrapper and database descriptions."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from .strategies import SingleIOV


class Algorithm:
    """Wraps a calibration algorithm object with its strategy, parameters and hooks.

    Like the real class, ``.algorithm`` holds the algorithm object itself (in basf2 a
    C++ ``CalibrationAlgorithm``), ``.name`` its class name, ``.strategy`` the
    strategy *class*, ``.params`` the strategy parameters and ``.pre_algorithm`` an
    optional ``function(algorithm, iteration)`` called before each execution.
    """

    def __init__(self, algorithm: Any, data_input: Optional[Callable] = None,
                 pre_algorithm: Optional[Callable] = None):
        self.algorithm = algorithm
        self.name = getattr(algorithm, "name", None) or type(algorithm).__name__
        self.data_input = data_input or self.default_inputdata_setup
        self.pre_algorithm = pre_algorithm
        self.strategy = SingleIOV
        self.params: dict = {}

    def default_inputdata_setup(self, input_file_paths) -> None:
        """Hands the collector output files to the algorithm (CAF's default data input)."""
        self.algorithm.setInputFileNames([str(p) for p in input_file_paths])

    def __repr__(self) -> str:
        return f"Algorithm({self.name}, strategy={self.strategy.__name__})"


class LocalDatabase:
    """A local database (a ``database.txt`` and its payload files) in a calibration's chain."""

    db_type = "local"

    def __init__(self, filepath, payload_dir=None):
        self.filepath = Path(filepath)
        self.payload_dir = Path(payload_dir) if payload_dir else self.filepath.parent

    def __repr__(self) -> str:
        return f"LocalDatabase({str(self.filepath)!r})"


class CentralDatabase:
    """A global tag of the central conditions database in a calibration's chain."""

    db_type = "central"

    def __init__(self, global_tag: str):
        self.global_tag = global_tag

    def __repr__(self) -> str:
        return f"CentralDatabase({self.global_tag!r})"
