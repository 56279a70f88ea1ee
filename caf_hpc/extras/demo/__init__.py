"""A toy detector calibration that exercises caf-hpc end to end without basf2.

``simulate`` writes collector output and the true constants; ``algorithms`` holds three
chained calibrations (pedestals run by run, then gains, then time offsets) whose results
can be compared with the truth, so a run of the demo shows that the payloads are right,
not only that the machinery turned.
"""
