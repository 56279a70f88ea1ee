"""The package's import structure: ``extras/`` builds on the core, never the reverse, and no module imports itself
back through others.

Every module of ``caf_hpc`` is parsed (not imported), and every import counts: at module level, inside functions
(which only put off a circle until the first call), relative ones resolved. ``from package import name`` counts
as an import of ``package.name`` when that is a module, else of ``package``; importing ``a.b.c`` runs ``a`` and
``a.b`` too, so it counts as importing each of them (except the importer's own packages, which Python has imported
before it).
"""
from __future__ import annotations

import ast
from pathlib import Path

import caf_hpc

PACKAGE_DIR = Path(caf_hpc.__file__).parent
ROOT = PACKAGE_DIR.parent
EXTRAS = "caf_hpc.extras"


#: The modules outside ``extras/`` that may NAME extras modules (in strings, imported on request only): the table
#: of where CAF's names live without basf2, and the command line, which assembles the demo's and testbed's
#: sub-commands. Neither is imported by the runner's code for what it needs itself.
NAMES_EXTRAS = {"caf_hpc.caf_names", "caf_hpc.cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path, by_name: bool = True) -> set[str]:
    """Every module of ``caf_hpc`` that ``name`` imports, anywhere in its code; with ``by_name``, also those it names
    in a string of exactly a module's name (imported by name: ``cli``'s sub-commands, the fork server's list)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if by_name and isinstance(node, ast.Constant) and node.value in MODULES:
            targets = [node.value]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & MODULES.keys()
    # Its own packages are imported before the module itself: importing them again is no edge.
    found -= {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    # Importing itself is no circle: ``python -m caf_hpc.cli`` imports the package's own module from ``__main__``.
    found.discard(name)
    return found


def _graph(by_name: bool = True) -> dict[str, set[str]]:
    return {name: _imports(name, path, by_name) for name, path in MODULES.items()}


def _circles(graph: dict[str, set[str]]) -> list[tuple[set[str], list[str]]]:
    """The strongly connected components with more than one module (Tarjan), each with one circle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(component, _one_circle(graph, component)) for component in components]


def _one_circle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest way from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for other in sorted(graph[node] & component):
            if other == start:
                return paths[node] + [start]
            if other not in paths:
                paths[other] = paths[node] + [other]
                todo.append(other)
    raise AssertionError(f"no circle through {start}")  # a component always has one


def _show(circle: list[str]) -> str:
    return " -> ".join(f"{name} ({MODULES[name].relative_to(ROOT)})" for name in circle)


def _is_extras(name: str) -> bool:
    return name == EXTRAS or name.startswith(EXTRAS + ".")


def test_the_parser_sees_imports_inside_functions_and_relative_ones():
    """What the two rules below rely on, checked on modules whose imports are known."""
    graph = _graph()
    assert "caf_hpc.steering.settings" in graph["caf_hpc.steering.binding"]  # at module level, relative
    assert "caf_hpc.interrupt" in graph["caf_hpc.cli"]  # inside a function
    assert "caf_hpc.errors" in graph["caf_hpc.report.command"]  # inside a function, two dots
    assert "caf_hpc.extras.standins.conditions" in graph["caf_hpc.extras.standins.cpp"]
    assert "caf_hpc.report.command" in graph["caf_hpc.cli"]  # by name, as cli imports its sub-commands
    assert _circles({"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()}) == [({"a", "b", "c"}, ["a", "b", "c", "a"])]


def test_nothing_outside_extras_imports_extras():
    """``extras/`` (the stand-ins of CAF, the demo, the testbed) builds on the core; the core needs none of it.
    (Names in strings are the next test's.)"""
    graph = _graph(by_name=False)
    wrong = sorted(f"{name} ({MODULES[name].relative_to(ROOT)}) imports {target}"
                   for name, targets in graph.items() if not _is_extras(name)
                   for target in targets if _is_extras(target))
    assert not wrong, "modules outside caf_hpc/extras/ import from it:\n  " + "\n  ".join(wrong)


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def test_extras_are_named_outside_extras_only_by_the_table_of_cafs_names_and_the_command_line():
    """A module's name in a string is an import put off (the fork server's list of modules to import once, say):
    outside ``extras/``, only ``NAMES_EXTRAS`` may hold one. Docstrings are prose and may name anything."""
    named = []
    for name, path in MODULES.items():
        if _is_extras(name) or name in NAMES_EXTRAS:
            continue
        tree = ast.parse(path.read_text(), str(path))
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose \
                    and EXTRAS in node.value:
                named.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:70]!r}")
    assert not named, ("modules outside caf_hpc/extras/ name extras modules in strings (name them in "
                       "caf_hpc/caf_names.py, the one table of them):\n  " + "\n  ".join(named))


def test_no_import_circle():
    circles = [circle for _component, circle in _circles(_graph())]
    assert not circles, "import circles (held apart only by imports inside functions, if at all):\n  " + \
        "\n  ".join(_show(circle) for circle in circles)
