"""A local conditions database in basf2's text format.

``database.txt`` holds one line per payload revision,
``dbstore/<PayloadName> <revision> <expLow>,<runLow>,<expHigh>,<runHigh>``; later lines
win. Payload files sit beside it (here JSON, in basf2 ROOT files). Writers from several
processes or hosts lock ``database.txt`` while they append.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Union

from .utils import ExpRun, IoV

PathLike = Union[str, os.PathLike]


class PayloadEntry(NamedTuple):
    name: str
    revision: int
    iov: IoV


def payload_filename(name: str, revision: int) -> str:
    return f"dbstore_{name}_rev_{revision}.json"


def read_entries(database_txt: PathLike) -> list[PayloadEntry]:
    """All entries of a ``database.txt``, in file order; a missing file has none."""
    path = Path(database_txt)
    if not path.exists():
        return []
    entries = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            store, revision, iov = line.split()
            name = store.split("/", 1)[1]
            entries.append(PayloadEntry(name, int(revision), IoV(*(int(x) for x in iov.split(",")))))
        except ValueError as err:
            raise ValueError(f"{path}:{lineno}: malformed database line {line!r}: "
                             "expected 'dbstore/<Name> <revision> <expLow>,<runLow>,<expHigh>,<runHigh>'") from err
    return entries


def write_payload(database_dir: PathLike, name: str, data: Any, iov: IoV) -> int:
    """Stores ``data`` as a new revision of payload ``name`` valid for ``iov``; returns the revision."""
    directory = Path(database_dir)
    directory.mkdir(parents=True, exist_ok=True)
    database_txt = directory / "database.txt"
    with open(database_txt, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            revision = 1 + max((e.revision for e in read_entries(database_txt) if e.name == name), default=0)
            payload = directory / payload_filename(name, revision)
            tmp = payload.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(payload)
            handle.write(f"dbstore/{name} {revision} {iov.exp_low},{iov.run_low},{iov.exp_high},{iov.run_high}\n")
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return revision


def find_payload(database_txt: PathLike, name: str, exprun: ExpRun) -> Optional[Any]:
    """The newest revision of ``name`` whose IoV contains ``exprun``, or None."""
    path = Path(database_txt)
    for entry in reversed(read_entries(path)):
        if entry.name == name and entry.iov.contains(exprun):
            return json.loads((path.parent / payload_filename(entry.name, entry.revision)).read_text())
    return None


def iter_payloads(database_txt: PathLike) -> Iterator[PayloadEntry]:
    yield from read_entries(database_txt)
