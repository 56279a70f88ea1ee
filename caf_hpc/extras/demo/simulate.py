"""Simulated detector data for the demo calibration, with the truth to check it against.

From a seed, so that a demo or a test gets identical data every time, in about a second
and a few MB at most. ``output_format="raw"`` writes what a collector job reads: raw hit
files, one per run (JSON: ``{"exp", "run", "pedestal_events", "signal_hits"}``), which the
demo's collector (``collector.collect``) turns into collector output. ``"json"`` and
``"root"`` write collector output directly (one file per group of runs, as several
collector jobs would): JSON for the Python algorithms, or ROOT files laid out as CAF's
collectors write them for the C++ ones.

The toy detector: each channel has a pedestal (ADC offset; different in each experiment
and drifting slowly from run to run), a gain (ADC/keV) and a time offset (ns). Each run
has pedestal (random-trigger) events reading out all channels, and source events hitting
one channel: mostly the source line, partly a Compton-like continuum below it. Hit times
carry the channel's offset plus a time walk that depends on the deposited energy.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..standins.calibration_algorithm import write_collector_output
from ..standins.utils import ExpRun
from .detector import PEDESTAL_EVENTS, SIGNAL_HITS, SOURCE_ENERGY_KEV, time_walk

TRUTH_FILENAME = "truth.json"

# Detector and source model; chosen so the calibrated constants land within
# 0.5 ADC (pedestals), 0.02 ADC/keV = 2 % (gains) and 0.2 ns (time offsets).
PEDESTAL_RANGE_ADC = (180.0, 220.0)
PEDESTAL_EXP_SHIFT_ADC = 10.0        # each experiment shifts each pedestal by up to this
PEDESTAL_DRIFT_ADC_PER_RUN = 0.1     # slow drift within an experiment
NOISE_RANGE_ADC = (0.6, 1.0)
GAIN_RANGE = (0.8, 1.2)              # ADC per keV
TIME_OFFSET_RANGE_NS = (-5.0, 5.0)
TIME_RESOLUTION_NS = 0.3
LINE_RESOLUTION = 0.03               # relative energy resolution of the source line
CONTINUUM_FRACTION = 0.15
CONTINUUM_RANGE = (0.2, 0.8)         # in units of the line energy


def simulate(output_dir: str | Path, *, seed: int = 2024,
             experiments: Sequence[int] = (1, 2), runs_per_experiment: int = 20,
             channels: int = 16, runs_per_file: int = 5, pedestal_events: int = 100,
             signal_events: int = 640, short_runs: Iterable[Sequence[int]] = (),
             output_format: str = "json") -> list[Path]:
    """Writes collector output files and ``truth.json`` to ``output_dir``; returns the files.

    Runs are numbered from 1 in every experiment. Runs listed in ``short_runs`` (as
    ``(exp, run)``) get only 5 pedestal events, to show a run without enough data.
    With ``output_format="raw"`` there is one file per run (``runs_per_file`` does not apply).
    """
    if output_format not in ("raw", "json", "root"):
        raise ValueError(f"output_format={output_format!r}: allowed are 'raw', 'json' and 'root'")
    write = write_collector_output  # for "raw", _write_raw writes one file per run instead
    if output_format == "root":
        from .cpp_algorithms import write_collector_output as write
    rng = random.Random(seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    short = {ExpRun(int(e), int(r)) for e, r in short_runs}

    base = [rng.uniform(*PEDESTAL_RANGE_ADC) for _ in range(channels)]
    noise = [rng.uniform(*NOISE_RANGE_ADC) for _ in range(channels)]
    gains = [rng.uniform(*GAIN_RANGE) for _ in range(channels)]
    offsets = [rng.uniform(*TIME_OFFSET_RANGE_NS) for _ in range(channels)]
    shift = {exp: [rng.uniform(-PEDESTAL_EXP_SHIFT_ADC, PEDESTAL_EXP_SHIFT_ADC) for _ in range(channels)]
             for exp in experiments}
    drift = {exp: [rng.uniform(-PEDESTAL_DRIFT_ADC_PER_RUN, PEDESTAL_DRIFT_ADC_PER_RUN) for _ in range(channels)]
             for exp in experiments}

    true_pedestals: dict[str, list[float]] = {}
    files: list[Path] = []
    for exp in experiments:
        runs = [ExpRun(exp, run) for run in range(1, runs_per_experiment + 1)]
        for first in range(0, len(runs), runs_per_file):
            group = runs[first:first + runs_per_file]
            objects: dict[str, dict[ExpRun, list]] = {PEDESTAL_EVENTS: {}, SIGNAL_HITS: {}}
            for er in group:
                peds = [base[ch] + shift[exp][ch] + drift[exp][ch] * (er.run - 1) for ch in range(channels)]
                true_pedestals[f"{er.exp},{er.run}"] = peds
                n_ped = 5 if er in short else pedestal_events
                objects[PEDESTAL_EVENTS][er] = [
                    [exp, er.run, [round(rng.gauss(peds[ch], noise[ch])) for ch in range(channels)]]
                    for _ in range(n_ped)]
                objects[SIGNAL_HITS][er] = [_signal_hit(rng, er, peds, noise, gains, offsets)
                                            for _ in range(signal_events)]
            if output_format == "raw":
                files.extend(_write_raw(out, objects))
            else:
                name = f"collector_output_e{exp}_r{group[0].run}-{group[-1].run}.{output_format}"
                files.append(write(out / name, objects))

    truth = {"seed": seed, "channels": channels, "experiments": list(experiments),
             "source_energy_kev": SOURCE_ENERGY_KEV, "noise_adc": noise,
             "Pedestals": true_pedestals, "Gains": gains, "TimeOffsets": offsets}
    (out / TRUTH_FILENAME).write_text(json.dumps(truth, indent=1))
    return files


def _write_raw(directory: Path, objects: dict[str, dict[ExpRun, list]]) -> list[Path]:
    """One raw hit file per run of ``objects``."""
    files = []
    for exprun in objects[PEDESTAL_EVENTS]:
        path = directory / f"raw_e{exprun.exp}_r{exprun.run:04d}.json"
        path.write_text(json.dumps({"exp": exprun.exp, "run": exprun.run,
                                    **{name: per_run[exprun] for name, per_run in objects.items()}}))
        files.append(path)
    return files


def _signal_hit(rng: random.Random, er: ExpRun, peds: list[float], noise: list[float],
                gains: list[float], offsets: list[float]) -> list:
    """One source hit: ``[exp, run, channel, adc, time_ns]``."""
    ch = rng.randrange(len(peds))
    if rng.random() < CONTINUUM_FRACTION:
        energy = SOURCE_ENERGY_KEV * rng.uniform(*CONTINUUM_RANGE)
    else:
        energy = rng.gauss(SOURCE_ENERGY_KEV, LINE_RESOLUTION * SOURCE_ENERGY_KEV)
    adc = round(peds[ch] + gains[ch] * energy + rng.gauss(0.0, noise[ch]))
    time = offsets[ch] + time_walk(energy) + rng.gauss(0.0, TIME_RESOLUTION_NS)
    return [er.exp, er.run, ch, adc, round(time, 3)]
