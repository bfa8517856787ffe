"""Run the docstring examples of every module of the installed package."""

import doctest
import importlib
import importlib.util
import inspect
import os
import pkgutil

import pytest

import fastlstm

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(fastlstm.__path__, prefix="fastlstm.")
    if not info.name.rsplit(".", 1)[-1].startswith("_cells_")
)


# Examples of the optional interop run only where their packages are installed (CI has them).
OPTIONAL = {"torch": ("import torch", "to_torch", "from_torch"),
            "onnx": ("import onnx", "to_onnx"), "onnxruntime": ("onnxruntime",),
            "tqdm": ("import tqdm",), "matplotlib": ("import matplotlib",)}


def _missing_packages(test):
    source = "".join(example.source for example in test.examples)
    return [pkg for pkg, marks in OPTIONAL.items()
            if any(m in source for m in marks) and importlib.util.find_spec(pkg) is None]


# The ecosystem adapters import their toolkit (an optional extra); the CI step that
# installs the extras sets FASTLSTM_REQUIRE_ECOSYSTEM=1, so they must import there.
ECOSYSTEM = {"fastlstm.ecosystem.aeon": "aeon", "fastlstm.ecosystem.sktime": "sktime"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    toolkit = ECOSYSTEM.get(name)
    if toolkit and importlib.util.find_spec(toolkit) is None and os.environ.get(
            "FASTLSTM_REQUIRE_ECOSYSTEM") != "1":
        pytest.skip(f"{name} needs the optional {toolkit!r} package")
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(module):
        if not _missing_packages(test):
            runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def _public_members():
    for name in fastlstm.__all__:
        cls = getattr(fastlstm, name)
        yield name, cls
        for attr, obj in inspect.getmembers(cls):
            target = obj.fget if isinstance(obj, property) else obj
            if (not attr.startswith("_") and inspect.isfunction(target)
                    and target.__module__.startswith("fastlstm")):
                yield f"{name}.{attr}", target


@pytest.mark.parametrize("name, obj", list(_public_members()), ids=lambda v: str(v))
def test_public_api_has_examples(name, obj):
    """Every public class, method and property of fastlstm carries a runnable example."""
    tests = doctest.DocTestFinder(recurse=False).find(obj, name)
    assert any(t.examples for t in tests), f"{name} has no docstring example"
