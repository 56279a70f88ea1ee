"""The demo's collector: a collector job's raw hit files, one per run, into its collector output.

A collector job (``run_collector_path.py`` on a worker) calls ``collect`` with the job's
input files. It writes what a CAF collector module writes: the objects per run, as ROOT
``TTree``\\s laid out as ``CollectorOutput.root`` (``output_format="root"``, for the C++
algorithms), or the JSON form the Python algorithms read (``CollectorOutput.json``: the
collection's ``output_patterns`` must say so).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..standins.utils import ExpRun
from .detector import PEDESTAL_EVENTS, SIGNAL_HITS

#: What the calibration's ``output_patterns`` are for each output format.
OUTPUT_PATTERNS = {"root": ["CollectorOutput.root"], "json": ["CollectorOutput.json"]}
#: The collector module, as a steering script registers it (``register_module(COLLECTOR, output_format=...)``).
COLLECTOR = f"{__name__}:collect"


def read_raw(path: str) -> tuple[ExpRun, dict]:
    """One raw hit file: its run and ``{object name: rows}``."""
    raw = json.loads(Path(path).read_text())
    return ExpRun(raw["exp"], raw["run"]), {name: raw[name] for name in (PEDESTAL_EVENTS, SIGNAL_HITS)}


def collect(input_files: list, output_file: str, database_chain: list, *, output_format: str = "root") -> None:
    """Collects the raw hits of ``input_files`` into ``output_file`` (root) or ``CollectorOutput.json`` beside it."""
    objects: dict[str, dict[ExpRun, list]] = {PEDESTAL_EVENTS: {}, SIGNAL_HITS: {}}
    for path in sorted(input_files):
        exprun, rows = read_raw(path)
        for name, values in rows.items():
            objects[name].setdefault(exprun, []).extend(values)
    if output_format == "root":
        from .cpp_algorithms import write_collector_output

        write_collector_output(output_file, objects)
    elif output_format == "json":
        from ..standins.calibration_algorithm import write_collector_output as write_json

        write_json(Path(output_file).with_name(OUTPUT_PATTERNS["json"][0]), objects)
    else:
        raise ValueError(f"output_format={output_format!r}: allowed are 'root' and 'json'")
    print(f"collected {len(input_files)} run(s): " + ", ".join(f"({e.exp},{e.run})" for e in sorted(
        objects[PEDESTAL_EVENTS])))
