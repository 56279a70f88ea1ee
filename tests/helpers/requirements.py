"""What a test needs that a machine may lack: a testbed batch system, ROOT. Skipped where missing,
failed where the test runner installed or started it (so that nothing passes by being skipped)."""
from __future__ import annotations

import pytest


def require_testbed(name: str) -> dict:
    """The environment for submitting to testbed ``name``; skips (or, in CI, fails) when it is down.

    ``tests/run.sh`` starts the testbeds and sets CAF_HPC_REQUIRE_BATCH=1, so that a batch
    test can never pass by being skipped there.
    """
    import os

    from caf_hpc.extras import testbed

    if not testbed.is_up(name):
        reason = f"the {name} testbed is down: start it with `caf-hpc testbed up {name}` (as root)"
        if os.environ.get("CAF_HPC_REQUIRE_BATCH") == "1":
            pytest.fail(f"{reason}; CAF_HPC_REQUIRE_BATCH=1 forbids skipping batch tests")
        pytest.skip(reason)
    return testbed.environment(name)


def require_root():
    """ROOT's Python module; skips (or, in CI, fails) where ROOT is not installed.

    ``tests/run.sh`` installs the ``root`` extra and sets CAF_HPC_REQUIRE_ROOT=1, so that
    the C++ tests can never pass by being skipped there.
    """
    import os

    from caf_hpc.extras.standins import cpp

    if not cpp.available():
        reason = "ROOT is not installed: pip install 'caf-hpc[root]'"
        if os.environ.get("CAF_HPC_REQUIRE_ROOT") == "1":
            pytest.fail(f"{reason}; CAF_HPC_REQUIRE_ROOT=1 forbids skipping the C++ tests")
        pytest.skip(reason)
    return cpp.import_root()


def require_compiler() -> str:
    """The system's C++ compiler (``c++``, else ``g++``); skips (or, in CI, fails) where there is none.
    ``tests/run.sh`` installs Debian's g++ and sets CAF_HPC_REQUIRE_COMPILER=1."""
    import os
    import shutil

    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        reason = "no C++ compiler to build a ROOT dictionary library with (apt-get install g++)"
        if os.environ.get("CAF_HPC_REQUIRE_COMPILER") == "1":
            pytest.fail(f"{reason}; CAF_HPC_REQUIRE_COMPILER=1 forbids skipping the test that needs it")
        pytest.skip(reason)
    return compiler


def require_browser():
    """A headless Chromium under selenium (Debian's chromium and chromium-driver); skips (or, in CI, fails)
    where it is missing. ``tests/run.sh`` installs it and sets CAF_HPC_REQUIRE_BROWSER=1."""
    import os
    import shutil

    missing = [path for path in ("/usr/bin/chromium", "/usr/bin/chromedriver") if not shutil.which(path)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install 'caf-hpc[test]')")
    if missing:
        reason = f"no headless browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
        if os.environ.get("CAF_HPC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; CAF_HPC_REQUIRE_BROWSER=1 forbids skipping the browser test")
        pytest.skip(reason)
    from caf_hpc.report.command import CHROMIUM_OPTIONS

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in CHROMIUM_OPTIONS:  # the options the report's screenshot uses
        if not argument.startswith("--virtual-time-budget"):  # only for a one-shot screenshot
            options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
