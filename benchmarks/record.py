"""What a measure returns: figures per runner, with their repetitions, a target and ratios.

Every figure keeps its samples (one per repetition), so the report gives the median and
the spread, and the JSON lets anyone recompute them.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

CAF_HPC = "caf-hpc"
REFERENCE = "reference, 5 s poll"
REFERENCE_FAST = "reference, 1 ms poll"
#: The collector step's baseline: CAF's Local backend (a process pool, statuses at CAF's 30 s full update).
CAF_LOCAL = "CAF's Local backend"


@dataclass
class Figure:
    """One runner's figure: a sample per repetition (in the measure's unit)."""

    samples: list
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> tuple:
        return min(self.samples), max(self.samples)

    def as_dict(self) -> dict:
        low, high = self.spread
        return {"samples": self.samples, "median": self.median, "min": low, "max": high, "n": len(self.samples),
                "note": self.note}


@dataclass
class Measure:
    """A row of the report: what is measured, every runner's figure, which one the target judges."""

    key: str
    title: str
    unit: str
    target: float | None = None        # None: reported only
    higher_is_better: bool = False
    judged: str = CAF_HPC                 # the figure the target applies to
    how: str = ""                         # how it was measured: counts, repetitions, definitions
    figures: dict = field(default_factory=dict)
    ratios: list = field(default_factory=list)   # (numerator label, denominator label)
    skipped: str | None = None         # why it was not measured here
    series: dict = field(default_factory=dict)   # raw data for the plots

    @property
    def met(self) -> bool | None:
        if self.skipped or self.target is None or self.judged not in self.figures:
            return None
        value = self.figures[self.judged].median
        return value >= self.target if self.higher_is_better else value <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "reported"
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:,g} {self.unit}"

    def ratio_values(self) -> dict:
        """``"a / b"`` -> median(a) / median(b), for each ratio whose figures were both measured."""
        values = {}
        for numerator, denominator in self.ratios:
            if numerator in self.figures and denominator in self.figures and self.figures[denominator].median:
                values[f"{numerator} / {denominator}"] = (self.figures[numerator].median
                                                          / self.figures[denominator].median)
        return values

    def as_dict(self) -> dict:
        data = asdict(self)
        data["figures"] = {label: figure.as_dict() for label, figure in self.figures.items()}
        data.update(target_text=self.target_text, met=self.met, ratios=self.ratio_values())
        return data

