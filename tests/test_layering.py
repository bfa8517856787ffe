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
