"""``caf-hpc report DIR``: what ran where and how long, and what the constants look like."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="summarise a calibration directory and write its HTML report",
        description="Prints one line per strategy attempt from the run records (caf-hpc-run.json) below DIR, "
                    "and writes a self-contained HTML page: a timeline with one lane per worker, links to "
                    "each log, and each payload's constants against run.")
    parser.add_argument("directory", type=Path, help="the calibration's output directory (or the demo's --output)")
    parser.add_argument("--html", type=Path, help="where to write the page (default: DIR/report.html)")
    parser.add_argument("--truth", type=Path,
                        help="JSON of the true constants, drawn beside the calibrated ones "
                             "(default: DIR/truth.json if there, as the demo writes it)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="also save a picture of the page, taken by headless Chromium (chromium on the PATH)")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from ..cli import UserError
    from . import TRUTH_FILE, ReportError, load_records, load_truth, summary

    default_truth = args.directory / TRUTH_FILE
    try:
        records = load_records(args.directory)
        truth = load_truth(args.truth or (default_truth if default_truth.exists() else None))
    except ReportError as err:
        raise UserError(str(err)) from None
    print(summary(records))
    page = write(records, args.html or args.directory / "report.html", truth)
    print(f"\nreport: {page}")
    if args.screenshot:
        print(f"screenshot: {screenshot(page, args.screenshot)}")
    return 0


#: Headless Chromium as root on a machine without network: no sandbox, no background connections.
CHROMIUM_OPTIONS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", "--virtual-time-budget=10000", "--window-size=1400,2400")


def screenshot(page: Path, png: Path, timeout: float = 120) -> Path:
    """A PNG of ``page`` as Chromium draws it (Bokeh's plots included)."""
    import shutil
    import subprocess
    import tempfile

    from ..cli import UserError

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise UserError("--screenshot needs Chromium on the PATH (Debian: apt-get install chromium)")
    png = png.resolve()
    with tempfile.TemporaryDirectory(prefix="caf-hpc-chromium-") as profile:
        done = subprocess.run([browser, *CHROMIUM_OPTIONS, f"--user-data-dir={profile}", f"--screenshot={png}",
                               page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png.exists():
        raise UserError(f"--screenshot: {browser} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return png


def write(records: list, page: Path, truth=None) -> Path:
    """The page, or a UserError naming what to install when Bokeh is missing."""
    from ..cli import UserError

    try:
        from .html import write_page
        return write_page(records, page, truth)
    except ModuleNotFoundError as err:
        if err.name == "bokeh":
            raise UserError("the HTML report needs Bokeh: pip install bokeh (it also serves Dask's dashboard)") \
                from None
        raise
