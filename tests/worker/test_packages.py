"""The worker image's diet: what caf-hpc needs once Bokeh and rich are left out, read from the installed metadata."""
from __future__ import annotations

from pathlib import Path

import pytest

from caf_hpc.worker import packages


def test_a_worker_keeps_dask_and_tls_and_leaves_the_plotting_stack():
    keep = packages.needed(leave_out=("bokeh", "rich"))
    assert {"caf-hpc", "dask", "distributed", "dask-jobqueue", "cloudpickle", "pyyaml", "cryptography", "tornado",
            "jinja2", "msgpack", "psutil"} <= keep
    assert not {"bokeh", "rich", "numpy", "pillow", "contourpy", "pygments", "pytest", "matplotlib"} & keep


def test_a_package_that_a_kept_one_needs_too_stays():
    """Jinja2, PyYAML and tornado are Bokeh's as much as distributed's: leaving Bokeh out keeps them."""
    everything = packages.needed()
    assert {"bokeh", "numpy", "rich"} <= everything
    assert {"jinja2", "pyyaml", "tornado", "packaging"} <= packages.needed(leave_out=("bokeh", "rich"))


def test_an_extra_brings_its_own_requirements():
    if "root" not in {packages.canonical(d.metadata["Name"]) for d in packages.metadata.distributions()}:
        pytest.skip("the root extra is not installed")
    assert {"root", "numpy"} <= packages.needed(extras=("root",), leave_out=("bokeh", "rich"))


def _install(site: Path, name: str) -> None:
    """A distribution as pip leaves one: its package and a dist-info whose RECORD lists the files."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (site / name / "sub").mkdir(parents=True)
    (site / name / "__init__.py").write_text("")
    (site / name / "sub" / "__init__.py").write_text("")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n{name}/sub/__init__.py,,\n{info.name}/METADATA,,\n"
                                 f"{info.name}/RECORD,,\n")


def test_what_is_not_needed_is_removed_files_and_directories_and_pip_stays(tmp_path):
    site = tmp_path / "site-packages"
    for name in ("unneeded", "kept", "pip"):
        _install(site, name)
    (site / "unneeded" / "__pycache__").mkdir()
    (site / "unneeded" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"")  # not in RECORD
    found = packages.removable(site, keep={"kept"})
    assert [d.metadata["Name"] for d in found] == ["unneeded"]
    packages.remove(found[0])
    assert sorted(p.name for p in site.iterdir()) == ["kept", "kept-1.0.dist-info", "pip", "pip-1.0.dist-info"]
