"""Run every example script of the documentation in quick mode, and the pages' code.

Each script must exit with status 0 and write its plot into the folder given
with ``--out``; the Python blocks of the quickstart and the user guide must
run. Quick mode keeps the whole module well under three minutes on two cores.
"""

import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_example_is_collected():
    assert {"long_gaps", "vanishing_gradient", "digits", "forecasting",
            "training_speed"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_quick_and_writes_its_plot(name, tmp_path):
    pytest.importorskip("matplotlib", reason="the examples draw their plots with matplotlib")
    if name == "forecasting":
        pytest.importorskip("statsmodels", reason="the forecasting example needs statsmodels")
    if name == "scaling":
        pytest.importorskip("distributed", reason="the scaling example needs dask[distributed]")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=170, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    png = tmp_path / f"{name}.png"
    assert png.is_file() and png.stat().st_size > 1000, result.stdout
    assert (tmp_path / f"{name}.json").is_file()
    if name == "long_gaps":  # redraw from the saved results
        png.unlink()
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "long_gaps.py"), "--replot", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert result.returncode == 0 and png.is_file(), result.stdout + result.stderr


def test_quick_mode_from_the_environment(tmp_path):
    """``FASTLSTM_EXAMPLES_QUICK=1`` selects quick mode without the flag."""
    pytest.importorskip("matplotlib", reason="the examples draw their plots with matplotlib")
    env = {**os.environ, "FASTLSTM_EXAMPLES_QUICK": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "digits.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"quick": true' in (tmp_path / "digits.json").read_text()


DOCS = EXAMPLES.parent
CODE_BLOCK = re.compile(r"\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)")


@pytest.mark.parametrize("page", ["quickstart.rst", "user_guide.rst", "saving.rst"])
def test_code_on_the_doc_pages_runs(page):
    """The Python blocks of a page run in order, in one namespace, as a reader would."""
    blocks = [textwrap.dedent(b) for b in CODE_BLOCK.findall((DOCS / page).read_text())]
    assert blocks
    for package in ("torch", "onnx", "onnxruntime"):  # "import onnxruntime" also needs onnx
        if any(f"import {package}" in b for b in blocks):
            pytest.importorskip(package)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_epochs is expected
        for block in blocks:
            exec(compile(block, f"{page} code block", "exec"), namespace)
