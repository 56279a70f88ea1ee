"""The ``caf.runners`` base class and error, as CAF defines them."""
from __future__ import annotations

from abc import ABC, abstractmethod


class RunnerError(Exception):
    """Raised by a runner when a strategy ends in a way CAF cannot interpret."""


class Runner(ABC):
    @abstractmethod
    def run(self, *args, **kwargs):
        ...


class AlgorithmsRunner(Runner):
    """Base class of CAF's algorithms runners; CAF sets the attributes, then calls ``run``."""

    FAILED = "FAILED"
    COMPLETED = "COMPLETED"

    def __init__(self, name: str):
        self.name = name
        self.input_files = []
        self.database_chain = []
        self.dependent_databases = []
        self.output_database_dir = ""
        self.results = {}
        self.final_state = None
        self.algorithms = None
        self.output_dir = ""
