"""caf-hpc's benchmark suite: every figure a user or a site admin asks about, against baselines in the same run.

``python -m benchmarks`` (or ``bash benchmarks/run.sh`` on a fresh machine) runs it and
writes the report; ``__main__`` says how. The files name what they hold: ``strategies``
(what every runner drives), ``reference`` (the baselines: CAF's reference runner loop and
CAF's ``Local`` backend), ``driving`` (a calibration run as CAF runs it, with clocks),
``collectors`` (CAF's collector step as CAF drives a backend, with clocks), ``measures``
(each figure), ``batch`` (the testbed's Slurm and the worker image), ``record``,
``report`` and ``plots``; ``image_size`` (``python -m benchmarks.image_size``) measures the
worker image on its own.
"""
from pathlib import Path

#: The checkout the suite runs from: what its report names (commit) and the worker image is built of.
CHECKOUT = Path(__file__).resolve().parents[1]
