"""The forecasting page: its code is the example script's, and the sktime backtest it shows.

Every code block of ``docs/forecasting.md`` is a marked part of
``docs/examples/forecast_plots.py``, which ``tests/test_examples.py`` runs.
Here: every part the page includes exists in the script and every marked
part is on the page; the plots the page shows exist; and the sktime block
(which runs only where sktime is installed) backtests as the page says,
each fold's forecast being that of a model fitted on the fold's past alone.
"""

import importlib
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = (DOCS / "forecasting.md").read_text()
SCRIPT_PATH = DOCS / "examples" / "forecast_plots.py"
SCRIPT = SCRIPT_PATH.read_text()


def test_the_page_shows_every_marked_part_of_the_script_and_nothing_else():
    starts = re.findall(r'^:start-after: "# \[([a-z-]+)\]"$', PAGE, re.M)
    ends = re.findall(r'^:end-before: "# \[/([a-z-]+)\]"$', PAGE, re.M)
    assert starts == ends and len(starts) >= 10
    marked = re.findall(r"^\s*# \[([a-z-]+)\]$", SCRIPT, re.M)
    closed = re.findall(r"^\s*# \[/([a-z-]+)\]$", SCRIPT, re.M)
    assert marked == closed
    assert sorted(starts) == sorted(marked)
    assert len(set(marked)) == len(marked)  # each part once: start-after finds the first


def test_the_page_has_no_code_of_its_own():
    """Code on the page comes from the script (which the tests run), never typed in."""
    assert "```python" not in PAGE and "```{code-block}" not in PAGE


def test_every_image_of_the_page_is_committed():
    images = re.findall(r"\]\((_static/forecast_[a-z]+\.png)\)", PAGE)
    assert len(images) >= 6
    for image in images:
        path = DOCS / image
        assert path.is_file() and path.stat().st_size > 10_000, image


def _require(name):
    if os.environ.get("FASTLSTM_REQUIRE_ECOSYSTEM") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name)


def _script_module():
    sys.path.insert(0, str(SCRIPT_PATH.parent))  # for its _common
    try:
        spec = importlib.util.spec_from_file_location("forecast_plots", SCRIPT_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT_PATH.parent))
    return module


def test_the_sktime_backtest_refits_each_fold_on_its_past():
    _require("sktime")
    from fastlstm.ecosystem.sktime import SktimeLSTMForecaster

    module = _script_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = module.sktime_backtest()
        y = part["y"]
        folds, naive = part["lstm"], part["naive"]
        assert len(folds) == len(naive) == 4
        for k in range(4):
            train, pred = folds["y_train"].iloc[k], folds["y_pred"].iloc[k]
            assert len(train) == 96 + 12 * k
            assert pred.index.equals(y.index[96 + 12 * k: 108 + 12 * k])
            alone = SktimeLSTMForecaster(window=24, hidden_size=32, max_epochs=100,
                                         random_state=0)
            alone.fit(train, fh=list(range(1, 13)))
            np.testing.assert_allclose(pred.to_numpy(), alone.predict().to_numpy(), rtol=1e-6)
            # the naive folds: the same months one year earlier
            np.testing.assert_array_equal(naive["y_pred"].iloc[k].to_numpy(),
                                          train.to_numpy()[-12:])
    mape = folds["test_MeanAbsolutePercentageError"].to_numpy()
    truth = [folds["y_test"].iloc[k].to_numpy() for k in range(4)]
    expected = [np.mean(np.abs(folds["y_pred"].iloc[k].to_numpy() - t) / np.abs(t))
                for k, t in enumerate(truth)]
    np.testing.assert_allclose(mape, expected, rtol=1e-9)
