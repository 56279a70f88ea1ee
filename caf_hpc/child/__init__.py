"""The strategy's process: one per strategy attempt, on the worker's host.

``process.run`` is what runs in it: it reads the ``StrategyCall``, runs the strategy as
CAF's ``AlgorithmMachine`` would, with all its output on the algorithm's log, and sends
the strategy's messages to the worker. Nothing here imports Dask.
"""
