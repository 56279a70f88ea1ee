"""What the benchmarks run: algorithms of a named strategy class, built as a steering script would."""
from __future__ import annotations

from caf_hpc.extras.standins.framework import Algorithm


class Named:
    """An algorithm object with nothing in it but its name (the strategy does the work)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def setInputFileNames(self, files) -> None:
        pass


def algorithms(strategy: type, count: int, prefix: str = "") -> list:
    """``count`` algorithms named ``<prefix or strategy name><i>`` that run ``strategy``."""
    made = []
    for i in range(count):
        algorithm = Algorithm(Named(f"{prefix or strategy.__name__}{i}"))
        algorithm.strategy = strategy
        made.append(algorithm)
    return made
