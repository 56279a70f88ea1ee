"""What both the simulation and the calibration know about the toy detector.

A real calibration knows its detector model (the source line, the shape of the time
walk) but not the constants it measures. Keeping that shared knowledge here, apart
from ``simulate``, keeps the algorithms from peeking at the truth.
"""
from __future__ import annotations

import math

#: Energy of the calibration source's line (think of a gamma source).
SOURCE_ENERGY_KEV = 500.0
#: Leading-edge time walk: hits of amplitude E arrive TIME_WALK / sqrt(E) late.
TIME_WALK_NS_SQRT_KEV = 50.0
#: Below this calibrated amplitude the walk model is not trusted.
MIN_WALK_ENERGY_KEV = 20.0

#: Collector object names and their row layouts.
PEDESTAL_EVENTS = "pedestal_events"   # rows: [exp, run, [adc of channel 0, 1, ...]]
SIGNAL_HITS = "signal_hits"           # rows: [exp, run, channel, adc, time_ns]


def time_walk(energy_kev: float) -> float:
    """The delay (ns) of a hit of amplitude ``energy_kev``, as the discriminator sees it."""
    return TIME_WALK_NS_SQRT_KEV / math.sqrt(max(energy_kev, 1.0))
