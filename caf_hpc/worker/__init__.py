"""What runs on a Dask worker: the task that supervises one strategy (``task``) and the
fork server its processes start from (``forkserver``).

Imports nothing itself: the fork server is started as ``python -m
caf_hpc.worker.forkserver`` and must not import Dask, which its children would inherit.
"""
