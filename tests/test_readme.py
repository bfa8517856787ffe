"""The README's Python examples run as written."""

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning is part of the example's story
        exec(compile(BLOCKS[index], f"README block {index}", "exec"), {})
    if "print(clf.score" in BLOCKS[index]:
        assert float(capsys.readouterr().out.split()[-1]) > 0.95


def test_the_quoted_demo_accuracy_is_what_the_demo_prints(capsys):
    from fastlstm.__main__ import main

    quoted = re.search(r"prints `test accuracy: ([0-9.]+)`", README.read_text())
    assert quoted, "the README quotes the demo's accuracy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["demo", "--quiet"]) == 0  # the default thread count
    printed = re.search(r"test accuracy: ([0-9.]+)", capsys.readouterr().out)
    # the same figure up to the second decimal, which machines may change
    assert abs(float(printed.group(1)) - float(quoted.group(1))) <= 0.02
