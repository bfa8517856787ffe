"""The package is laid out by layer: each imports only the layers below it.

The contract is the import-linter ``layers`` contract in pyproject.toml
(``lint-imports`` checks it by hand); this test runs it, so a cycle or an
upward import fails the suite.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastlstm

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(fastlstm.__file__).resolve().parent


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    return [exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"]


def test_the_layers_contract_is_kept():
    pytest.importorskip("importlinter")
    proc = subprocess.run(_lint_imports(), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_the_contract_names_every_subpackage():
    """A new subpackage must take its place in the layers, or it escapes the contract."""
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    subpackages = {f"fastlstm.{p.name}" for p in PACKAGE.iterdir()
                   if p.is_dir() and (p / "__init__.py").exists()}
    assert subpackages <= named, subpackages - named


def test_lower_layers_never_name_the_cells():
    """Above the cells nothing names a cell: they ask the registry (fastlstm.nn.registry)."""
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("_bench",) or rel.parts[:2] == ("nn", "cells") or rel.name in (
                "__init__.py", "_compat.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                cell_module = (node.module.startswith("fastlstm.nn.cells.")
                               and node.module != "fastlstm.nn.cells.spec")
                assert not cell_module, (rel, node.module)


def test_no_module_is_over_six_hundred_lines():
    """A file is one idea: the Python, Cython and C sources stay small enough to read whole."""
    sources = [p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".pyx", ".pxi", ".pxd", ".h")]
    assert len(sources) > 40
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in sources}
    assert {name: n for name, n in sizes.items() if n > 600} == {}


def _cycles(graph) -> list[list[str]]:
    """The import graph's cycles: its strongly connected parts of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_cycle():
    """Within a layer too (which the layers contract does not see), and through
    the package facade: every import at run time, lazy ones included."""
    grimp = pytest.importorskip("grimp")  # import-linter's graph library
    graph = grimp.build_graph("fastlstm", exclude_type_checking_imports=True)
    assert _cycles(graph) == []
    # the check sees a cycle when there is one
    graph.add_import(importer="fastlstm.runtime.config", imported="fastlstm.nn.layer")
    assert _cycles(graph)
