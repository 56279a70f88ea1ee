"""Three chained demo calibrations, written against the stand-in ``CalibrationAlgorithm``.

They are deliberately dependent, as real Belle II calibrations are: gains need the
pedestals committed earlier in the same iteration, time offsets need both. A runner that
reorders them, runs them concurrently or loses ``output_database_dir`` between them makes
the chain fail loudly (code 3) instead of producing silently wrong constants.

Everything here is importable and picklable, so a runner can ship ``make_algorithms()``
(or the objects it returns) to a worker.
"""
from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable, Sequence
from math import fsum
from pathlib import Path

from ..standins import database
from ..standins.calibration_algorithm import CalibrationAlgorithm
from ..standins.framework import Algorithm
from ..standins.strategies import SimpleRunByRun, SingleIOV
from ..standins.utils import AlgResult, ExpRun
from .detector import MIN_WALK_ENERGY_KEV, PEDESTAL_EVENTS, SIGNAL_HITS, SOURCE_ENERGY_KEV, time_walk

log = logging.getLogger("caf.demo")

ALGORITHM_NAMES = ("PedestalCalibration", "GainCalibration", "TimeOffsetCalibration")
PAYLOAD_NAMES = ("Pedestals", "Gains", "TimeOffsets")


class DemoAlgorithm(CalibrationAlgorithm):
    """Shared plumbing: the fail-on-purpose switch and reading earlier payloads per run."""

    def __init__(self, fail: bool = False, min_hits: int = 20) -> None:
        super().__init__(prefix=type(self).__name__)
        self.fail = fail
        self.min_hits = min_hits

    def calibrate(self) -> AlgResult:
        if self.fail:
            log.error("%s: failing on purpose (make_algorithms(fail=%r)) to show fail-fast",
                      self.name, self.name)
            print(f"{self.name}: failing on purpose")
            return AlgResult.failure
        return self.run_calibration()

    def run_calibration(self) -> AlgResult:
        raise NotImplementedError

    def payloads_per_run(self, name: str, key: str) -> dict[ExpRun, list[float]] | None:
        """``payload[key]`` of payload ``name`` for each executed run, or None (logged) if any is missing."""
        found, missing = {}, []
        for exprun in self.getRunList():
            payload = self.getPayload(name, exprun)
            if payload is None:
                missing.append(tuple(exprun))
            else:
                found[exprun] = payload[key]
        if missing:
            log.error("%s: no %s payload for %d of %d runs (first: %s). It must be committed by an "
                      "earlier algorithm of this iteration (or come from the database chain); "
                      "runs without enough data belong in ignored_runs.",
                      self.name, name, len(missing), len(found) + len(missing), missing[:5])
            return None
        log.info("%s: read %s payloads for %d runs", self.name, name, len(found))
        return found


class PedestalCalibration(DemoAlgorithm):
    """Pedestal = mean ADC of random-trigger events, per channel; meant to run run by run."""

    def run_calibration(self) -> AlgResult:
        events = self.getObjectPtr(PEDESTAL_EVENTS)
        runs = [tuple(r) for r in self.getRunList()]
        if len(events) < self.min_hits:
            log.warning("%s: only %d pedestal events in %s (need %d): not enough data",
                        self.name, len(events), runs, self.min_hits)
            return AlgResult.not_enough_data
        per_channel = list(zip(*(adcs for _exp, _run, adcs in events), strict=True))
        pedestals = [fsum(adcs) / len(adcs) for adcs in per_channel]
        noise = [statistics.pstdev(adcs) for adcs in per_channel]
        self.saveCalibration({"pedestal": pedestals, "noise": noise, "events": len(events)}, "Pedestals")
        log.info("%s: %s: %d channels from %d events, mean noise %.2f ADC",
                 self.name, runs, len(pedestals), len(events), fsum(noise) / len(noise))
        return AlgResult.ok


class GainCalibration(DemoAlgorithm):
    """Gain = pedestal-subtracted position of the source line / line energy, per channel."""

    def run_calibration(self) -> AlgResult:
        pedestals = self.payloads_per_run("Pedestals", "pedestal")
        if pedestals is None:
            return AlgResult.failure
        amplitudes = _per_channel(self.getObjectPtr(SIGNAL_HITS), len(next(iter(pedestals.values()))),
                                  lambda exp, run, ch, adc, t: adc - pedestals[ExpRun(exp, run)][ch])
        gains, resolution = [], []
        for ch, amps in enumerate(amplitudes):
            if len(amps) < self.min_hits:
                log.warning("%s: channel %d has %d source hits (need %d)", self.name, ch, len(amps), self.min_hits)
                return AlgResult.not_enough_data
            start = statistics.median(amps)
            peak, sigma, _n = _truncated_mean(amps, start, 0.05 * start)
            gains.append(peak / SOURCE_ENERGY_KEV)
            resolution.append(sigma / peak)
        self.saveCalibration({"gain": gains, "resolution": resolution}, "Gains")
        log.info("%s: gains of %d channels from %d runs: %.3f .. %.3f ADC/keV",
                 self.name, len(gains), len(pedestals), min(gains), max(gains))
        print(f"{self.name}: {len(gains)} gains, line resolution {100 * fsum(resolution) / len(resolution):.1f} %")
        return AlgResult.ok


class TimeOffsetCalibration(DemoAlgorithm):
    """Time offset = mean hit time after removing the walk of the calibrated amplitude."""

    def run_calibration(self) -> AlgResult:
        pedestals = self.payloads_per_run("Pedestals", "pedestal")
        gains = self.payloads_per_run("Gains", "gain")
        if pedestals is None or gains is None:
            return AlgResult.failure
        n_channels = len(next(iter(pedestals.values())))

        walks: list[float] = []

        def corrected(exp: int, run: int, ch: int, adc: float, t: float) -> float | None:
            er = ExpRun(exp, run)
            energy = (adc - pedestals[er][ch]) / gains[er][ch]
            if energy < MIN_WALK_ENERGY_KEV:
                return None
            walks.append(time_walk(energy))
            return t - walks[-1]

        times = _per_channel(self.getObjectPtr(SIGNAL_HITS), n_channels, corrected)
        log.info("%s: removed a time walk of %.2f ns on average (%d hits)",
                 self.name, fsum(walks) / max(len(walks), 1), len(walks))
        offsets, spread = [], []
        for ch, values in enumerate(times):
            if len(values) < self.min_hits:
                log.warning("%s: channel %d has %d usable hits (need %d)", self.name, ch, len(values), self.min_hits)
                return AlgResult.not_enough_data
            t0, sigma, _n = _truncated_mean(values, statistics.median(values), 1.0)
            offsets.append(t0)
            spread.append(sigma)
        self.saveCalibration({"t0": offsets, "sigma": spread}, "TimeOffsets")
        log.info("%s: time offsets of %d channels: %.2f .. %.2f ns, resolution %.2f ns after walk correction",
                 self.name, len(offsets), min(offsets), max(offsets), fsum(spread) / len(spread))
        print(f"{self.name}: {len(offsets)} time offsets, mean resolution {fsum(spread) / len(spread):.2f} ns")
        return AlgResult.ok


def _per_channel(rows: list, n_channels: int, value: Callable[..., float | None]) -> list[list[float]]:
    """Groups ``value(*row)`` of signal-hit rows by channel, dropping None."""
    grouped: list[list[float]] = [[] for _ in range(n_channels)]
    for row in rows:
        v = value(*row)
        if v is not None:
            grouped[row[2]].append(v)
    return grouped


def _truncated_mean(values: Sequence[float], start: float, width: float,
                    n_sigma: float = 3.0, max_iter: int = 20) -> tuple[float, float, int]:
    """Iterated mean within ±n_sigma: the peak position, robust against a continuum beside it."""
    centre, sigma, n = start, width, 0
    for _ in range(max_iter):
        window = [v for v in values if abs(v - centre) <= n_sigma * sigma]
        if len(window) < 2:
            break
        new_centre, sigma, n = fsum(window) / len(window), statistics.pstdev(window), len(window)
        converged = abs(new_centre - centre) < 1e-9 * max(1.0, abs(centre))
        centre = new_centre
        if converged:
            break
    return centre, sigma, n


def make_algorithms(fail: str | None = None) -> list[Algorithm]:
    """The three wrapped demo algorithms, in dependency order, with their strategies set.

    ``fail`` names one algorithm that returns code 3 (failure) to show fail-fast.
    """
    if fail is not None and fail not in ALGORITHM_NAMES:
        raise ValueError(f"fail={fail!r} is not a demo algorithm; allowed: {', '.join(ALGORITHM_NAMES)}")
    wrapped = []
    for cls, strategy in ((PedestalCalibration, SimpleRunByRun), (GainCalibration, SingleIOV),
                          (TimeOffsetCalibration, SingleIOV)):
        algorithm = Algorithm(cls(fail=cls.__name__ == fail))
        algorithm.strategy = strategy
        wrapped.append(algorithm)
    return wrapped


def check_against_truth(database_dir: str | Path, truth_file: str | Path) -> dict[str, float | None]:
    """Max |calibrated − true| over channels (and runs) per payload; None if it is missing for a run.

    Units: Pedestals ADC, Gains ADC/keV (true gains are ~1, so this is ~relative),
    TimeOffsets ns. Shows that the payloads a runner produced are physically right.
    """
    truth = json.loads(Path(truth_file).read_text())
    database_txt = Path(database_dir) / "database.txt"
    expected = {"Pedestals": ("pedestal", lambda key: truth["Pedestals"][key]),
                "Gains": ("gain", lambda key: truth["Gains"]),
                "TimeOffsets": ("t0", lambda key: truth["TimeOffsets"])}
    residuals: dict[str, float | None] = {}
    for name, (field, true_values) in expected.items():
        worst: float | None = 0.0
        for key in truth["Pedestals"]:
            payload = database.find_payload(database_txt, name, ExpRun(*map(int, key.split(","))))
            if payload is None:
                worst = None
                break
            worst = max(worst, max(abs(c - t) for c, t in zip(payload[field], true_values(key), strict=True)))
        residuals[name] = worst
    return residuals
