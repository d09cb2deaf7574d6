"""The architecture holds: no import circle, the plugin stays an adapter, small modules."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import robustness_checks
import robustness_checks.plugin as plugin

PACKAGE = Path(robustness_checks.__file__).parent
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (lazy imports in functions included,
    TYPE_CHECKING blocks excluded)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = {
            id(child)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in ast.walk(node)
        }
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                base = node.module
                found |= {f"{base}.{a.name}" for a in node.names} | {base}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def test_no_import_circle() -> None:
    graph = _imports()
    # An import of a package's submodule also runs the package's __init__; the inits here are
    # docstrings or lazy, so only module-to-module edges count.
    edges = {m: {t for t in ts if not _is_package(t)} for m, ts in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_only_pytest_imports_the_plugin() -> None:
    importers = sorted(
        name
        for name, targets in _imports().items()
        if not name.startswith("robustness_checks.plugin")
        and any(t.startswith("robustness_checks.plugin") for t in targets)
    )
    assert importers == []


def test_every_module_is_small_and_says_what_it_is_for() -> None:
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_LINES, f"{path} has over {MAX_LINES} lines"
        docstring = ast.get_docstring(ast.parse(text))
        assert docstring, f"{path} has no module docstring"


def test_every_plugin_hook_is_registered() -> None:
    defined = {
        name
        for path in Path(plugin.__file__).parent.glob("*.py")
        for name in (
            node.name
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef)
        )
        if name.startswith("pytest_")
    }
    exported = {name for name, value in vars(plugin).items() if inspect.isfunction(value)}
    assert defined, "no hooks found"
    assert defined <= exported, f"hooks not registered: {sorted(defined - exported)}"


def test_no_layer_outside_the_check_types_reads_a_details_key() -> None:
    """Gating, reporting, the plugin and the API read each check type's typed declarations
    (details models, gated values), never a key of a result's details by string: a renamed key
    would silently drop a gate or a chart."""
    import re

    key_read = re.compile(r"""details\s*(\)\s*)?(\[\s*["']|\.get\(\s*["'])""")
    layers = ["gating", "reporting", "plugin", "execution", "validity"]
    files = [p for layer in layers for p in (PACKAGE / layer).rglob("*.py")]
    files += [PACKAGE / name for name in ("results.py", "api.py", "__main__.py", "details.py")]
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if key_read.search(line)
    ]
    assert not found, "\n".join(found)
