"""Pure-Python stand-ins for the parts of basf2's CAF that the runner touches.

basf2 cannot be installed everywhere (CI, a laptop, a fresh worker image), yet the
runner must keep CAF's contract exactly. These modules mirror the names, signatures
and message formats of ``caf.utils``, ``caf.framework``, ``caf.strategies``,
``caf.runners`` and ``basf2.conditions`` closely enough that the same steering code
and the same runner drive both. ``caf_hpc.basf2_compat`` picks the real classes
whenever basf2 is importable.
"""
