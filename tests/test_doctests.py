"""Run the docstring examples of every module of the installed package."""

import doctest
import importlib
import pkgutil

import pytest

import fastlstm

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(fastlstm.__path__, prefix="fastlstm.")
    if not info.name.rsplit(".", 1)[-1].startswith("_cells_")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_public_api_has_examples():
    """Every public name exported by fastlstm carries a runnable example."""
    finder = doctest.DocTestFinder()
    for name in fastlstm.__all__:
        tests = finder.find(getattr(fastlstm, name), name)
        assert any(t.examples for t in tests), f"{name} has no docstring example"
