"""``caf-hpc report DIR``: what ran where and how long, and what the constants look like."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only: imported where it is used
    import subprocess


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="summarise a calibration directory and write its HTML report",
        description="Prints one line per strategy attempt from the run records (caf-hpc-run.json) below DIR, "
                    "and writes a self-contained HTML page: a timeline with one lane per worker, links to "
                    "each log, and each payload's constants against run.")
    parser.add_argument("directory", type=Path, help="the calibration's output directory (or the demo's --output)")
    parser.add_argument("--html", type=Path, help="where to write the page (default: DIR/report.html)")
    parser.add_argument("--truth", type=Path,
                        help="JSON of the true constants: the page then draws calibrated minus true, per channel "
                             "(default: DIR/truth.json if there, as the demo writes it)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="also save a picture of the whole page, taken by headless Chromium (chromium on the PATH)")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from ..errors import UserError
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
                    "--hide-scrollbars", "--virtual-time-budget=10000")
#: The picture's width; its height is the page's own (measured first), so that nothing is cut off.
SCREENSHOT_WIDTH = 1400
#: Added to a copy of the page that is only measured: writes the height of the drawn page where
#: ``--dump-dom`` shows it, again and again while Bokeh lays the plots out (the last one counts).
_MEASURE = ("<script>setInterval(() => document.documentElement.setAttribute('data-caf-hpc-height', "
            "document.documentElement.scrollHeight), 200)</script>")


def _chromium() -> str:
    import shutil

    from ..errors import UserError

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise UserError("--screenshot needs Chromium on the PATH (Debian: apt-get install chromium)")
    return browser


def _run_chromium(browser: str, arguments: list, timeout: float) -> subprocess.CompletedProcess[str]:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="caf-hpc-chromium-") as profile:
        return subprocess.run([browser, *CHROMIUM_OPTIONS, f"--user-data-dir={profile}", *arguments],
                              capture_output=True, text=True, timeout=timeout)


def page_height(page: Path, browser: str, timeout: float = 120) -> int:
    """The height in pixels of ``page`` drawn ``SCREENSHOT_WIDTH`` wide: Chromium's ``--screenshot`` takes
    the window, not the page, so the window must be made as tall as the page."""
    import re
    import tempfile

    from ..errors import UserError

    with tempfile.TemporaryDirectory(prefix="caf-hpc-measure-") as directory:
        copy = Path(directory) / page.name
        text = page.read_text(encoding="utf-8")
        end = text.rindex("</body>")  # the page's own; Bokeh's inlined code holds the string too
        copy.write_text(text[:end] + _MEASURE + text[end:], encoding="utf-8")
        # A window lower than the page: a taller one stretches the page's 100%-high root to its own height.
        done = _run_chromium(browser, [f"--window-size={SCREENSHOT_WIDTH},600", "--dump-dom", copy.as_uri()], timeout)
    found = re.search(r'data-caf-hpc-height="(\d+)"', done.stdout)
    if done.returncode != 0 or not found:
        raise UserError(f"--screenshot: {browser} could not measure the page (exit {done.returncode}): "
                        f"{done.stderr.strip()[-500:]}")
    return int(found.group(1))


def screenshot(page: Path, png: Path, timeout: float = 120) -> Path:
    """A PNG of the whole of ``page`` as Chromium draws it (Bokeh's plots included)."""
    from ..errors import UserError

    browser = _chromium()
    png = png.resolve()
    height = page_height(page, browser, timeout)
    done = _run_chromium(browser, [f"--window-size={SCREENSHOT_WIDTH},{height}", f"--screenshot={png}",
                                   page.resolve().as_uri()], timeout)
    if done.returncode != 0 or not png.exists():
        raise UserError(f"--screenshot: {browser} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return png


def write(records: list[dict], page: Path, truth: dict | None = None) -> Path:
    """The page, or a UserError naming what to install when Bokeh is missing."""
    from ..errors import UserError

    try:
        from .html import write_page
        return write_page(records, page, truth)
    except ModuleNotFoundError as err:
        if err.name == "bokeh":
            raise UserError("the HTML report needs Bokeh: pip install bokeh (it also serves Dask's dashboard)") \
                from None
        raise
