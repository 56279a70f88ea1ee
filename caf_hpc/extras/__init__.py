"""What comes with caf-hpc besides the runner: CAF's stand-ins where basf2 is missing
(``standins``), the demo calibration (``demo``), and single-node batch systems to try
it on (``testbed``)."""
