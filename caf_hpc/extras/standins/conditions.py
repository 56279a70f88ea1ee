"""Process-wide conditions configuration, like ``basf2.conditions``.

A strategy resets it and builds its lookup chain before executing an algorithm; that
it is *process-wide* state is exactly why each strategy runs in a process of its own.
In basf2 the configuration lives in C++ and Python only sets it; here it lives in
Python, and C++ algorithms (``caf_hpc.extras.standins.cpp``) get a mirror that follows every
change.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import database
from .database import PathLike
from .utils import ExpRun, IoV


class Conditions:
    def __init__(self) -> None:
        self._mirrors: list[Callable[[Conditions], None]] = []
        self.reset()

    def mirror(self, follow: Callable[[Conditions], None]) -> None:
        """Calls ``follow(self)`` now and after every change (the C++ side's copy)."""
        self._mirrors.append(follow)
        follow(self)

    def _changed(self) -> None:
        for follow in self._mirrors:
            follow(self)

    def reset(self) -> None:
        self.testing_payloads: list[str] = []
        self.globaltags: list[str] = []
        self.save_payloads: str | None = None
        self._changed()

    def prepend_testing_payloads(self, database_txt: PathLike) -> None:
        self.testing_payloads.insert(0, str(database_txt))
        self._changed()

    def prepend_globaltag(self, tag: str) -> None:
        self.globaltags.insert(0, tag)

    def expert_settings(self, save_payloads: PathLike | None = None) -> None:
        if save_payloads is not None:
            self.save_payloads = str(save_payloads)
            self._changed()

    def get_payload(self, name: str, exp: int, run: int) -> Any | None:
        """Looks ``name`` up for (exp, run) through the testing payloads, first one wins."""
        for database_txt in self.testing_payloads:
            found = database.find_payload(database_txt, name, ExpRun(exp, run))
            if found is not None:
                return found
        return None

    def save(self, name: str, data: Any, iov: IoV) -> int:
        if not self.save_payloads:
            raise RuntimeError("no output database configured: call conditions.expert_settings(save_payloads=...)")
        return database.write_payload(Path(self.save_payloads).parent, name, data, iov)


conditions = Conditions()
