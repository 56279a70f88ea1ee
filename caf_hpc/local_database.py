"""basf2's local conditions database, as caf-hpc reads it: ``database.txt`` and its payload files.

``database.txt`` holds one line per payload revision,
``dbstore/<PayloadName> <revision> <expLow>,<runLow>,<expHigh>,<runHigh>``; later lines
win. Payload files sit beside it: JSON from the Python stand-in algorithms, ROOT files
(as in basf2, ``dbstore_<Name>_rev_<revision>.root``) from the C++ ones; both are read
back as ``{column: values}``. ``caf-hpc report`` reads a calibration's output database
with these; the stand-ins' conditions database (``caf_hpc.extras.standins.database``)
writes and looks up payloads with them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from .caf_types import ExpRun, IoV

PathLike = str | os.PathLike


class PayloadEntry(NamedTuple):
    name: str
    revision: int
    iov: IoV


def payload_filename(name: str, revision: int, suffix: str = ".json") -> str:
    return f"dbstore_{name}_rev_{revision}{suffix}"


def read_payload(directory: PathLike, name: str, revision: int) -> Any:
    """The contents of one payload revision, from its JSON or ROOT file."""
    json_file = Path(directory) / payload_filename(name, revision)
    if json_file.exists():
        return json.loads(json_file.read_text())
    root_file = Path(directory) / payload_filename(name, revision, ".root")
    if not root_file.exists():
        raise FileNotFoundError(f"payload {name} revision {revision} is in {Path(directory) / 'database.txt'} "
                                f"but neither {json_file.name} nor {root_file.name} is beside it")
    from .root_helpers import import_root

    ROOT = import_root()
    handle = ROOT.TFile.Open(str(root_file), "READ")
    try:
        tree = handle.Get(name)
        tree.GetEntry(0)
        return {branch.GetName(): list(getattr(tree, branch.GetName())) for branch in tree.GetListOfBranches()}
    finally:
        handle.Close()


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


def newest_entry(entries: list[PayloadEntry], name: str, exprun: ExpRun) -> PayloadEntry | None:
    """Of ``entries`` (in file order), the newest revision of ``name`` whose IoV contains ``exprun``."""
    for entry in reversed(entries):
        if entry.name == name and entry.iov.contains(exprun):
            return entry
    return None
