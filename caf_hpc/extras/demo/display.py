"""The demo's view of its run while it goes: a live table on a terminal, plain lines otherwise.

The algorithm step is fed by the runner's progress listener
(``caf_hpc.steering.progress.add_listener``): every change of the run record redraws the
table (rich), or prints what changed, one line each. The collector step has a line of its
own, "n/m jobs done", read from the collector Jobs (``collector``) a few times a second.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: What an attempt's outcome shows as.
_STATES = {"running": "running", "lost": "lost (retried)", "ended": "ended"}


def _status(strategy: dict) -> tuple:
    """(state, where, results, seconds) of one strategy in the record."""
    attempts = strategy["attempts"]
    last: dict | None = attempts[-1] if attempts else None
    if strategy.get("final_state"):
        state = strategy["final_state"]
    elif last is None:
        state = "submitted"
    elif last["outcome"] == "lost":
        state = "worker lost, waiting for another"
    else:
        state = _STATES.get(last["outcome"], last["outcome"])
    where = "-"
    if last is not None and last.get("host"):
        where = f"{last['host']}" + (f", job {last['job_id']}" if last.get("job_id") else "")
    results = strategy["results"] if strategy.get("final_state") else (last or {}).get("results", 0)
    end = strategy.get("finished") or time.time()
    return state, where, results, end - strategy["submitted"]


class RunDisplay:
    """Use as a context manager around the run; ``self.update`` is the progress listener."""

    #: How often the collector line is looked at.
    TICK = 0.25

    def __init__(self, names: list, stream: Any = None,
                 collector: Callable[[], tuple | None] | None = None) -> None:
        self.names = names
        self.stream = stream or sys.stdout
        self.collector = collector   # () -> (completed, failed, running, total) or None
        self.live: Any = None
        self.handlers: list = []  # (log handler, the stream it wrote to before the live display)
        self.said: dict = {}
        self.record: dict | None = None
        self._collector_said: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> RunDisplay:
        if self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            terminal = (sys.stdout, sys.stderr)
            self.live = Live(get_renderable=self._table, console=Console(file=self.stream), refresh_per_second=4,
                             transient=False)
            self.live.__enter__()
            self._log_through_live(terminal)
        elif self.collector is not None:
            self._ticker = threading.Thread(target=self._tick, name="demo-display", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            if exc[0] is None:  # after Ctrl-C, the one line about it is the last
                self._say_collector()
        if self.live is not None:
            self.live.refresh()
            for handler, stream in self.handlers:
                handler.setStream(stream)
            self.live.__exit__(*exc)

    def _log_through_live(self, terminal: tuple) -> None:
        """Log handlers that write to the terminal (``--verbose``) write through the live display
        while it runs, as ``print`` does (rich redirects ``sys.stdout``/``sys.stderr``, but a handler
        keeps the stream it was given): lines written past it would be overwritten by the next redraw."""
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in terminal:
                proxy = sys.stdout if handler.stream is terminal[0] else sys.stderr
                self.handlers.append((handler, handler.setStream(proxy)))

    def _collector_text(self) -> str | None:
        try:
            progress = self.collector() if self.collector is not None else None
        except Exception:  # a Job being changed by the calibration's thread: look again at the next tick
            return None
        if progress is None:
            return None
        completed, failed, running, total = progress
        return f"{completed}/{total} jobs done" + (f", {failed} failed" if failed else "") \
            + (f", {running} running" if running else "")

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK):
            self._say_collector()

    def _say_collector(self) -> None:
        from ... import interrupt

        if interrupt.interrupted():
            return  # after Ctrl-C, the one line about it is the last
        text = self._collector_text()
        with self._lock:
            if text is not None and text != self._collector_said:
                self._collector_said = text
                print(f"  collector: {text}", file=self.stream, flush=True)

    def update(self, record: dict) -> None:
        if record.get("kind") == "collector":
            return  # the collector jobs' own records: their progress is the collector line
        if self.record is None and record.get("dashboard"):
            self._say(f"  Dask dashboard: {record['dashboard']}")
        self.record = record
        if self.live is not None:
            self.live.refresh()
            return
        self._say_collector()  # the collector's last state before the algorithms' lines
        for strategy in record["strategies"]:
            state, where, results, seconds = _status(strategy)
            if self.said.get(strategy["algorithm"]) != (state, where):
                self.said[strategy["algorithm"]] = (state, where)
                detail = f" on {where}" if where != "-" else ""
                ended = f", {results} result(s) in {seconds:.1f} s" if strategy.get("final_state") else ""
                print(f"  {strategy['algorithm']}: {state}{detail}{ended}", file=self.stream, flush=True)

    def _say(self, line: str) -> None:
        """One line above the table. While the table is live it goes through rich's console, which
        clears the table, writes the line and redraws the table below it: written to the stream
        directly, the next redraw (which moves the cursor up by the table's height) would overwrite
        the line and leave a copy of the table's title behind."""
        if self.live is not None:
            self.live.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self.stream, flush=True)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title="collector step, then algorithm step", title_justify="left")
        for column in ("algorithm", "state", "where", "results", "s"):
            table.add_column(column, justify="right" if column in ("results", "s") else "left")
        collector = self._collector_text()
        if collector is not None:
            table.add_row("collector", f"[cyan]{collector}[/cyan]", "", "", "")
        strategies = {s["algorithm"]: s for s in (self.record or {}).get("strategies", [])}
        colours = {"COMPLETED": "green", "FAILED": "red", "running": "cyan"}
        for name in self.names:
            if name not in strategies:
                table.add_row(name, "[dim]not started[/dim]", "", "", "")
                continue
            state, where, results, seconds = _status(strategies[name])
            colour = colours.get(state, "yellow")
            table.add_row(name, f"[{colour}]{state}[/{colour}]", where, str(results), f"{seconds:.1f}")
        return table
