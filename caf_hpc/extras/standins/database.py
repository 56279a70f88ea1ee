"""A local conditions database in basf2's text format.

``database.txt`` holds one line per payload revision,
``dbstore/<PayloadName> <revision> <expLow>,<runLow>,<expHigh>,<runHigh>``; later lines
win. Payload files sit beside it: JSON from the Python stand-in algorithms, ROOT files
(as in basf2, ``dbstore_<Name>_rev_<revision>.root``) from the C++ ones; both are read
back as ``{column: values}``. Writers from several processes or hosts lock
``database.txt`` while they append. Reading is the package's own (``caf_hpc.local_database``,
which ``caf-hpc report`` uses too), re-exported here.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ... import file_lock
from ...local_database import PathLike, PayloadEntry, newest_entry, payload_filename, read_entries, read_payload
from .utils import ExpRun, IoV

__all__ = ["PathLike", "PayloadEntry", "find_payload", "iter_payloads", "newest_entry", "payload_filename",
           "read_entries", "read_payload", "write_payload"]


def write_payload(database_dir: PathLike, name: str, data: Any, iov: IoV) -> int:
    """Stores ``data`` as a new revision of payload ``name`` valid for ``iov``; returns the revision."""
    directory = Path(database_dir)
    directory.mkdir(parents=True, exist_ok=True)
    database_txt = directory / "database.txt"
    with open(database_txt, "a+") as handle:
        with file_lock.locked(handle):
            revision = 1 + max((e.revision for e in read_entries(database_txt) if e.name == name), default=0)
            payload = directory / payload_filename(name, revision)
            tmp = payload.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(payload)
            handle.write(f"dbstore/{name} {revision} {iov.exp_low},{iov.run_low},{iov.exp_high},{iov.run_high}\n")
            handle.flush()
    return revision


def find_payload(database_txt: PathLike, name: str, exprun: ExpRun) -> Any | None:
    """The newest revision of ``name`` whose IoV contains ``exprun``, or None."""
    path = Path(database_txt)
    entry = newest_entry(read_entries(path), name, exprun)
    return None if entry is None else read_payload(path.parent, entry.name, entry.revision)


def iter_payloads(database_txt: PathLike) -> Iterator[PayloadEntry]:
    yield from read_entries(database_txt)
