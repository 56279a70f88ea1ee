"""The shape of ``caf_hpc.sites``: one module per scheduler, found by the registry; no import circle with the
runner's settings; site configs know nothing of the steering side."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import caf_hpc
from caf_hpc.sites import schedulers
from caf_hpc.sites.schedulers.core import Scheduler

pytestmark = pytest.mark.timeout(60)

PACKAGE = Path(caf_hpc.__file__).parent
SITES = PACKAGE / "sites"
#: The steering modules that read site configs; they import ``caf_hpc.sites`` at their top, and it never imports them.
STEERING = ("settings", "clusters", "binding")


def _imports(path: Path) -> list:
    """``(module imported, whether at the module's top level)`` for every import in ``path``, resolved to full names."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found += [(f"{module}.{alias.name}" if node.module is None else module, id(node) in top)
                      for alias in node.names]
    return found


def test_site_configs_never_import_the_steering_side_that_reads_them():
    """The circle settings -> sites -> settings was held apart by imports inside functions; what both need is in
    leaf modules (``caf_hpc.setting_rules``, ``checks``, ``resources``, ``interrupt``), which import neither: the
    steering process's modules build on the site configs, never the reverse (the workers read the schedulers)."""
    for path in sorted(SITES.rglob("*.py")):
        for module, _ in _imports(path):
            assert not (module == "caf_hpc.steering" or module.startswith("caf_hpc.steering.")), \
                f"{path.relative_to(PACKAGE)} imports {module}"
    rules = {module for module, _ in _imports(PACKAGE / "setting_rules.py")}
    assert not {m for m in rules if m.startswith("caf_hpc.")}, rules


def test_the_steering_side_imports_site_configs_at_its_top_only():
    for name in STEERING:
        path = PACKAGE / "steering" / f"{name}.py"
        late = [module for module, at_top in _imports(path) if module.startswith("caf_hpc.sites") and not at_top]
        assert not late, f"{path.name} imports {late} inside a function"


def test_importing_the_settings_first_or_the_sites_first_works():
    """No import order can meet a half-initialised module."""
    for first, second in (("caf_hpc.steering.settings", "caf_hpc.sites.build"),
                          ("caf_hpc.sites.build", "caf_hpc.steering.settings"),
                          ("caf_hpc.sites.config", "caf_hpc.steering.binding")):
        done = subprocess.run([sys.executable, "-c", f"import {first}, {second}"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr


def test_each_scheduler_is_one_short_module_found_by_the_registry():
    modules = sorted(path.stem for path in (SITES / "schedulers").glob("*.py") if path.stem not in ("__init__", "core"))
    assert sorted(schedulers.names()) == modules
    for scheduler in schedulers.all_schedulers():
        assert isinstance(scheduler, Scheduler) and scheduler.title
        lines = len((SITES / "schedulers" / f"{scheduler.name}.py").read_text().splitlines())
        assert lines <= 270, f"{scheduler.name}.py has {lines} lines: what all schedulers share belongs in core.py"
        if scheduler.is_batch:
            assert scheduler.cluster_class().__name__ == scheduler.cluster_class_name
            assert scheduler.job_id_variables


def test_no_scheduler_is_named_outside_its_module():
    """Adding a scheduler is adding its module: no other module of ``caf_hpc.sites`` or the steering side that
    reads site configs may compare with, or list, a scheduler's name."""
    names = set(schedulers.names())
    paths = [p for p in SITES.rglob("*.py") if p.parent.name != "schedulers"]
    paths += [PACKAGE / "steering" / f"{name}.py" for name in STEERING]
    for path in paths:
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr)}
        named = sorted({node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                        and isinstance(node.value, str) and node.value in names and id(node) not in docstrings})
        if path.name == "settings.py":
            named = [name for name in named if name != "local"]  # the local default's cluster key, not a site's
        assert not named, f"{path.relative_to(PACKAGE)} names {named}"


def test_the_job_id_variables_of_a_worker_are_the_schedulers_own(monkeypatch):
    """A worker names its batch job by the variables each scheduler's module declares, Slurm's first (PBS over
    Slurm sets both)."""
    from caf_hpc.worker.task import where

    assert schedulers.JOB_ID_VARIABLES == tuple(v for s in schedulers.all_schedulers() for v in s.job_id_variables)
    assert schedulers.JOB_ID_VARIABLES[:3] == ("SLURM_JOB_ID", "PBS_JOBID", "JOB_ID")
    for name in schedulers.JOB_ID_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert where().job_id is None
    monkeypatch.setenv("JOB_ID", "77")
    assert where().job_id == "77"
    monkeypatch.setenv("PBS_JOBID", "12.server")
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    assert where().job_id == "12"
