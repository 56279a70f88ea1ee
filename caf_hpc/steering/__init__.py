"""What runs in the steering process, where CAF drives the runner: the runner itself
(``runner``), ``runner_for`` and its settings, packing strategies for the workers
(``shipping``), the shared Dask clusters (``clusters``) and the events the runner waits
on (``events``).
"""
