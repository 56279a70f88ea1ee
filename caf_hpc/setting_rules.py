"""What the runner's settings and the site configs share, in a module that imports neither.

``steering.settings`` reads a site config (``caf_hpc.sites``) to fill in what the user left
open, and the site configs check their ``runner`` section and build their clusters with the
same rules and limits: both sides take them from here, so that neither imports the other
back.
"""
from __future__ import annotations

import re
from typing import Any

#: The local default cluster's dashboard, and a batch site's scheduler's unless the site says otherwise:
#: on this machine only, on a free port.
LOCAL_DASHBOARD = "127.0.0.1:0"

#: The schedulers of the clusters caf-hpc starts let a task lose this many workers. Dask's own limit
#: (``distributed.scheduler.allowed-failures``, 3 by default) ended a strategy with a ``KilledWorker`` at
#: its fourth lost worker whatever the runner's ``retries``. Here ``retries`` is the only limit: each runner
#: counts its strategy's lost workers and cancels it past its own ``retries``, and one cluster serves runners
#: with different ``retries``, so the scheduler's limit is one that no runner reaches.
ALLOWED_FAILURES = 1_000_000

_PRELOAD_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_.]*)?$")
PRELOAD_FORM = "'package.module' to import it, or 'package.module:function' to import it and call function()"


class SettingsError(ValueError):
    """A runner setting has a value that cannot work; the message names it and what is allowed."""


def preload_problems(entries: Any) -> list[str]:
    """What is wrong with a ``preload`` list (empty when nothing is), one message per entry: the same for
    ``runner_for(preload=...)``, ``CAF_HPC_PRELOAD`` and a site's ``runner.preload``."""
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        return [f"expected a list of module names, got {entries!r}; each entry is {PRELOAD_FORM}"]
    return [f"entry {entry!r} is not {PRELOAD_FORM}" for entry in entries
            if not isinstance(entry, str) or not _PRELOAD_ENTRY.match(entry)]
