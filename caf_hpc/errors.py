"""The error a ``caf-hpc`` sub-command raises for a mistake the user can fix.

A module of its own, with nothing imported, so that the sub-commands (``report``, ``sites``,
``demo``, ``testbed``) raise it without importing ``caf_hpc.cli``, which imports them.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; printed as one message, without a traceback."""
