"""The sktime adapter: sktime's own estimator checks, the fastlstm forecaster it wraps,
sktime's vectorization over panels, and backtesting with ``evaluate``.

sktime is an optional extra.  Without it this module skips, unless
FASTLSTM_REQUIRE_ECOSYSTEM=1 (set by the CI step that installs the extras),
which turns the missing package into a failure.
"""

import importlib
import io
import os
import re
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest


def _require(name):
    if os.environ.get("FASTLSTM_REQUIRE_ECOSYSTEM") == "1":
        return importlib.import_module(name)  # missing: an ImportError fails the module
    return pytest.importorskip(name)


sktime = _require("sktime")

import pandas as pd  # noqa: E402
from sktime.datasets import load_airline  # noqa: E402
from sktime.forecasting.base import ForecastingHorizon  # noqa: E402
from sktime.forecasting.model_evaluation import evaluate  # noqa: E402
from sktime.forecasting.naive import NaiveForecaster  # noqa: E402
from sktime.performance_metrics.forecasting import MeanAbsolutePercentageError  # noqa: E402
from sktime.split import ExpandingWindowSplitter  # noqa: E402
from sktime.utils.estimator_checks import check_estimator  # noqa: E402

import fastlstm  # noqa: E402
from fastlstm.ecosystem.sktime import SktimeLSTMForecaster  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ecosystem.md"
PARAMS = dict(window=6, hidden_size=6, max_epochs=5, batch_size=8, random_state=0, n_jobs=1)


def test_sktime_check_estimator_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(SktimeLSTMForecaster, raise_exceptions=False, verbose=False)
    failed = {name: result for name, result in results.items() if result != "PASSED"}
    assert not failed, "\n".join(f"{k}: {v!r}"[:500] for k, v in failed.items())
    ran = {name.split("[")[0] for name in results}
    for test in ("test_predict_time_index_with_X", "test_update_predict_predicted_index",
                 "test_hierarchical_with_exogenous", "test_persistence_via_pickle",
                 "test_fit_idempotent", "test_unequal_length_hierarchical_fit_predict"):
        assert test in ran, test
    assert len(results) > 500


def _series(n=80, index="period", seed=0, name="level"):
    rng = np.random.default_rng(seed)
    values = 20 + np.sin(np.arange(n) * np.pi / 6) * 3 + np.arange(n) / 10 + rng.normal(
        0, 0.2, n)
    idx = {"period": pd.period_range("2000-01", periods=n, freq="M"),
           "datetime": pd.date_range("2000-01-01", periods=n, freq="D"),
           "range": pd.RangeIndex(n),
           "int": pd.Index(np.arange(100, 100 + n))}[index]
    return pd.Series(values, index=idx, name=name)


def _reference(y, horizon, X=None, X_future=None, **params):
    """The fastlstm forecaster fitted and asked as the adapter should."""
    f = fastlstm.LSTMForecaster(horizon=horizon, **params)
    window = params["window"]
    if X is None:
        f.fit(y.to_numpy(float))
        return f.predict(horizon, y=y.to_numpy(float)[-window:])
    f.fit(y.to_numpy(float), X.to_numpy(float), future_covariates=list(range(X.shape[1])))
    context = np.concatenate([X.to_numpy(float)[-window:], X_future.to_numpy(float)])
    return f.predict(horizon, y=y.to_numpy(float)[-window:], X=context)


@pytest.mark.parametrize("index", ["period", "datetime", "range", "int"])
def test_forecasts_are_the_fastlstm_forecasters_with_the_index_of_fh(index):
    y = _series(index=index)
    fh = [1, 2, 3, 4]
    pred = SktimeLSTMForecaster(**PARAMS).fit(y, fh=fh).predict()
    want = _reference(y, 4, **PARAMS)
    np.testing.assert_array_equal(pred.to_numpy(), want)
    expected = ForecastingHorizon(fh, is_relative=True, freq=getattr(y.index, "freq", None))
    pd.testing.assert_index_equal(pred.index, expected.to_absolute_index(y.index[-1:]))
    assert pred.name == "level"


def test_non_contiguous_fh_picks_its_steps():
    y = _series()
    pred = SktimeLSTMForecaster(**PARAMS).fit(y, fh=[2, 5]).predict()
    want = _reference(y, 5, **PARAMS)
    np.testing.assert_array_equal(pred.to_numpy(), want[[1, 4]])
    assert list(pred.index.astype(str)) == ["2006-10", "2007-01"]


def test_multivariate_y_keeps_its_columns():
    y = pd.concat([_series(seed=1, name="a"), 2 * _series(seed=2, name="b")], axis=1)
    pred = SktimeLSTMForecaster(**PARAMS).fit(y, fh=[1, 2]).predict()
    assert list(pred.columns) == ["a", "b"] and pred.shape == (2, 2)
    f = fastlstm.LSTMForecaster(horizon=2, **PARAMS).fit(y.to_numpy())
    np.testing.assert_array_equal(pred.to_numpy(), f.predict(2, y=y.to_numpy()[-6:]))


def test_exogenous_X_is_known_in_the_future():
    y = _series(n=90)
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"promo": rng.integers(0, 2, 90).astype(float),
                      "temp": rng.normal(size=90)}, index=y.index)
    y = y + 2 * X["promo"]
    y_train, X_train, X_test = y[:80], X[:80], X[80:]
    f = SktimeLSTMForecaster(**PARAMS).fit(y_train, X=X_train, fh=[1, 2, 3])
    pred = f.predict(X=X_test)
    want = _reference(y_train, 3, X_train, X_test[:3], **PARAMS)
    np.testing.assert_array_equal(pred.to_numpy(), want)
    # the future rows matter: other covariates, another forecast
    other = X_test.assign(promo=1 - X_test["promo"])
    assert not np.array_equal(f.predict(X=other).to_numpy(), pred.to_numpy())
    with pytest.raises(ValueError, match="X must hold the 3 time points after the cutoff"):
        f.predict(X=X_test[1:])
    # update: the new rows of X come with those of y, and the context moves
    with pytest.raises(ValueError, match="update needs X for every new time point"):
        f.update(y[80:83], update_params=False)
    f.update(y[80:83], X=X[80:83], update_params=False)
    want = f.forecaster_.predict(3, y=y.to_numpy()[77:83], X=X.to_numpy()[77:86])
    np.testing.assert_array_equal(f.predict(X=X[83:]).to_numpy(), want)


def test_update_moves_the_context_or_refits():
    y = _series(n=90)
    f = SktimeLSTMForecaster(**PARAMS).fit(y[:80], fh=[1, 2])
    model = f.forecaster_
    f.update(y[80:85], update_params=False)
    assert f.forecaster_ is model and f.cutoff[0] == y.index[84]
    np.testing.assert_array_equal(f.predict().to_numpy(),
                                  model.predict(2, y=y.to_numpy()[79:85]))
    f.update(y[85:], update_params=True)  # refit on everything seen
    np.testing.assert_array_equal(f.predict().to_numpy(), _reference(y, 2, **PARAMS))


def test_panels_and_hierarchies_are_vectorized_by_sktime():
    series = {key: _series(n=60, seed=i) * (i + 1) for i, key in enumerate("abc")}
    panel = pd.concat(series, names=["store", "time"]).to_frame()
    pred = SktimeLSTMForecaster(**PARAMS).fit(panel, fh=[1, 2, 3]).predict()
    assert pred.index.nlevels == 2 and set(pred.index.get_level_values(0)) == set("abc")
    for key, y in series.items():
        alone = SktimeLSTMForecaster(**PARAMS).fit(y, fh=[1, 2, 3]).predict()
        np.testing.assert_array_equal(pred.loc[key].to_numpy().ravel(), alone.to_numpy())
    hier = pd.concat({"north": panel, "south": panel * 2}, names=["region", "store", "time"])
    pred = SktimeLSTMForecaster(**PARAMS).fit(hier, fh=[1]).predict()
    assert pred.index.nlevels == 3 and len(pred) == 6


def test_evaluate_backtests_with_an_expanding_window():
    y = load_airline()
    cv = ExpandingWindowSplitter(initial_window=96, step_length=12, fh=list(range(1, 13)))
    forecaster = SktimeLSTMForecaster(window=24, hidden_size=16, max_epochs=30,
                                      random_state=0, n_jobs=1)
    scoring = MeanAbsolutePercentageError()
    result = evaluate(forecaster, cv, y, scoring=scoring, return_data=True)
    assert len(result) == 4
    # each fold is the forecaster fitted on the data up to its cutoff
    for _, fold in result.iterrows():
        cutoff = fold["y_train"].index[-1]
        alone = SktimeLSTMForecaster(window=24, hidden_size=16, max_epochs=30, random_state=0,
                                     n_jobs=1).fit(y[:cutoff], fh=list(range(1, 13)))
        np.testing.assert_array_equal(fold["y_pred"].to_numpy(), alone.predict().to_numpy())
    naive = evaluate(NaiveForecaster(strategy="last"), cv, y, scoring=scoring)
    column = [c for c in result.columns if c.startswith("test_")][0]
    assert result[column].mean() < naive[column].mean()


def test_the_fitted_forecaster_saves():
    y = _series()
    f = SktimeLSTMForecaster(**PARAMS).fit(y, fh=[1, 2])
    buffer = io.BytesIO()
    fastlstm.save(f.forecaster_, buffer)
    loaded = fastlstm.load(io.BytesIO(buffer.getvalue()))
    np.testing.assert_array_equal(loaded.predict(2, y=y.to_numpy()[-6:]),
                                  f.predict().to_numpy())


def test_the_docs_page_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in blocks:
            exec(compile(textwrap.dedent(block), str(DOCS), "exec"), namespace)  # noqa: S102
