"""LSTMForecaster against references built by hand: windows, scaling, the inner regressor."""

import io
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import fastlstm
from fastlstm import LSTMForecaster, LSTMRegressor
from fastlstm.estimators.forecaster_core import WindowSpec, training_windows
from fastlstm.train.windows import fit_scaling, undo_scaling, window_arrays, window_views

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

INT32_MAX = np.iinfo(np.int32).max


def trend_series(n=120, seed=0, k=1):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = [0.05 * t * (j + 1) + np.sin(2 * np.pi * t / 12 + j) + 0.1 * rng.normal(size=n)
            for j in range(k)]
    return np.stack(cols, axis=1) if k > 1 else cols[0]


def small(**kw):
    params = dict(window=8, horizon=3, hidden_size=8, max_epochs=4, random_state=0,
                  n_jobs=1)
    params.update(kw)
    return LSTMForecaster(**params)


# ---------------------------------------------------------------- windows and scaling
def test_window_views_match_a_hand_loop():
    series = np.arange(30.0).reshape(15, 2)
    views = window_views(series, 4, 3)
    hand = np.stack([series[i:i + 7] for i in range(15 - 7 + 1)])
    np.testing.assert_array_equal(views, hand)
    assert np.shares_memory(views, series)  # a view, no copy


@pytest.mark.parametrize("method", ["last", "mean", "none"])
def test_window_arrays_match_hand_scaling_and_round_trip(method):
    rng = np.random.default_rng(1)
    series = np.cumsum(rng.normal(size=(40, 3)), axis=0)  # 2 targets, 1 covariate
    k, window, steps = 2, 6, 3
    scaling = fit_scaling([series], k, window, method)
    views = window_views(series, window, steps)
    x, t, ref = window_arrays(views, k, window, steps, scaling, future_columns=None,
                              dtype=np.float64)
    # the spread: of every input target value relative to its window's reference
    rel = []
    for i in range(len(series) - window + 1):
        w = series[i:i + window, :k]
        r = {"last": w[-1], "mean": w.mean(0), "none": series[:, :k].mean(0)}[method]
        rel.append(w - r)
    spread = np.concatenate(rel).std(axis=0)
    np.testing.assert_allclose(scaling.target_scale, spread, rtol=1e-10)
    for i in range(len(views)):
        w = series[i:i + window, :k]
        r = {"last": w[-1], "mean": w.mean(0), "none": series[:, :k].mean(0)}[method]
        np.testing.assert_allclose(x[i, :, :k], (w - r) / spread, rtol=1e-10, atol=1e-12)
        cov = (series[i:i + window, k:] - series[:, k:].mean(0)) / series[:, k:].std(0)
        np.testing.assert_allclose(x[i, :, k:], cov, rtol=1e-10, atol=1e-12)
        future = series[i + window:i + window + steps, :k]
        np.testing.assert_allclose(t[i], ((future - r) / spread).ravel(), rtol=1e-10,
                                   atol=1e-12)
    np.testing.assert_allclose(undo_scaling(t, ref, scaling), views[:, window:, :k],
                               rtol=1e-12, atol=1e-12)


def test_future_covariates_enter_the_forecast_steps_with_a_flag():
    series = np.arange(60.0).reshape(20, 3)  # 1 target, covariates 0 (past) and 1 (future)
    scaling = fit_scaling([series], 1, 5, "last")
    views = window_views(series, 5, 2)
    x, _, _ = window_arrays(views, 1, 5, 2, scaling, future_columns=np.array([1]),
                            dtype=np.float64)
    assert x.shape == (len(views), 7, 4)
    np.testing.assert_array_equal(x[:, :5, 3], 0)
    np.testing.assert_array_equal(x[:, 5:, 3], 1)
    np.testing.assert_array_equal(x[:, 5:, :2], 0)  # target and past-only covariate
    want = (series[5:7, 2] - series[:, 2].mean()) / series[:, 2].std()
    np.testing.assert_allclose(x[0, 5:, 2], want)


def test_validation_windows_are_the_end_of_each_series():
    a, b = np.arange(40.0)[:, None], 100 + np.arange(30.0)[:, None]
    spec = WindowSpec(5, 2, 1, 0, np.zeros(0, dtype=np.intp), "float64")
    scaling = fit_scaling([a, b], 1, 5, "none")
    reg = LSTMRegressor()
    X, Y, X_val, Y_val = training_windows([a, b], spec, scaling, 0.2, reg)
    n_a, n_b = 40 - 6, 30 - 6
    v_a, v_b = int(np.ceil(0.2 * n_a)), int(np.ceil(0.2 * n_b))
    assert len(X_val) == v_a + v_b
    assert len(X) == (n_a - v_a - 1) + (n_b - v_b - 1)  # one window dropped before each
    mean, scale = scaling.target_mean[0], scaling.target_scale[0]
    # the last validation window of each series ends at that series' end
    np.testing.assert_allclose(Y_val[v_a - 1] * scale + mean, a[-2:, 0])
    np.testing.assert_allclose(Y_val[-1] * scale + mean, b[-2:, 0])
    # no training target is a validation target
    last_train_a = Y[n_a - v_a - 2] * scale + mean
    first_val_a = Y_val[0] * scale + mean
    assert last_train_a.max() < first_val_a.min()


# ---------------------------------------------------------------- against the regressor
def hand_windows(y, window, steps):
    """Windows, targets and scaling ("last") by a plain loop."""
    rel = [y[i:i + window] - y[i + window - 1] for i in range(len(y) - window + 1)]
    scale = np.concatenate(rel).std()
    X, Y = [], []
    for i in range(len(y) - window - steps + 1):
        ref = y[i + window - 1]
        X.append((y[i:i + window] - ref) / scale)
        Y.append((y[i + window:i + window + steps] - ref) / scale)
    return np.array(X)[:, :, None], np.array(Y), scale


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_forecast_equals_a_regressor_on_hand_made_windows(dtype):
    y = trend_series(100)
    f = small(window=10, horizon=4, dtype=dtype, random_state=3).fit(y)
    X, Y, scale = hand_windows(y, 10, 4)
    seed = np.random.RandomState(3).randint(INT32_MAX)
    reg = LSTMRegressor(hidden_size=8, max_epochs=4, n_jobs=1, dtype=dtype, random_state=seed,
                        learning_rate=f.learning_rate).fit(X.astype(dtype), Y)
    last = ((y[-10:] - y[-1]) / scale)[None, :, None].astype(dtype)
    want = reg.predict(last)[0] * scale + y[-1]
    np.testing.assert_allclose(f.predict(), want, rtol=1e-5 if dtype == "float32" else 1e-10)
    np.testing.assert_allclose(f.loss_curve_, reg.loss_curve_, rtol=1e-4)


def test_recursive_forecast_equals_feeding_predictions_back_by_hand():
    y = trend_series(90)
    f = small(strategy="recursive", horizon=1).fit(y)
    context = list(y)
    for _ in range(7):
        context.append(f.predict(1, y=np.array(context))[0])
    np.testing.assert_allclose(f.predict(7), context[-7:], rtol=1e-12)
    assert f.predict(7).shape == (7,)


def test_shorter_horizon_is_a_prefix_of_the_direct_forecast():
    f = small(horizon=5).fit(trend_series())
    np.testing.assert_array_equal(f.predict(2), f.predict()[:2])


def test_per_window_scaling_follows_a_trend_beyond_the_training_range():
    t = np.arange(400)
    y = 0.1 * t + np.sin(2 * np.pi * t / 12)
    f = LSTMForecaster(window=24, horizon=6, hidden_size=16, max_epochs=40, random_state=0,
                       n_jobs=1).fit(y[:300])
    err = np.abs(f.predict(y=y[:394]) - y[394:]).mean()  # far above every training value
    naive = np.abs(y[393] - y[394:]).mean()
    assert err < naive / 3


# ---------------------------------------------------------------- containers and indexes
def test_series_with_a_datetime_index_continues_it():
    index = pd.date_range("2001-01-07", periods=80, freq="W")
    y = pd.Series(trend_series(80), index=index, name="co2")
    f = small().fit(y)
    out = f.predict()
    assert isinstance(out, pd.Series) and out.name == "co2"
    assert list(out.index) == list(pd.date_range(index[-1], periods=4, freq="W")[1:])
    ctx = f.predict(2, y=y[:50])
    assert list(ctx.index) == [index[50], index[51]]


def test_period_range_and_integer_indexes_continue():
    y = trend_series(60)
    periods = pd.Series(y, index=pd.period_range("1900", periods=60, freq="Y"))
    f = small().fit(periods)
    assert list(f.predict().index.astype(str)) == ["1960", "1961", "1962"]
    ranged = pd.Series(y, index=pd.RangeIndex(10, 130, 2))
    assert list(small().fit(ranged).predict().index) == [130, 132, 134]
    ints = pd.Series(y, index=np.arange(60) * 5 + 3)
    assert list(small().fit(ints).predict().index) == [303, 308, 313]


def test_multivariate_frame_forecasts_every_target():
    y = pd.DataFrame(trend_series(80, k=2), columns=["a", "b"],
                     index=pd.date_range("2000", periods=80, freq="MS"))
    f = small(scaling="mean").fit(y)
    out = f.predict()
    assert list(out.columns) == ["a", "b"] and out.shape == (3, 2)
    assert out.index[0] == pd.Timestamp("2006-09-01")
    arr = small().fit(y.to_numpy()).predict()
    assert isinstance(arr, np.ndarray) and arr.shape == (3, 2)


def test_list_and_panel_give_one_forecast_per_series():
    ys = [trend_series(50 + 10 * i, seed=i) for i in range(3)]
    f = small().fit(ys)
    out = f.predict()
    assert isinstance(out, list) and [o.shape for o in out] == [(3,)] * 3
    frames = [pd.DataFrame({"y": s}, index=pd.RangeIndex(len(s))) for s in ys]
    panel = pd.concat(frames, keys=["x", "y", "z"], names=["series", "time"])
    g = small().fit(panel)
    forecast = g.predict()
    assert list(forecast.index.get_level_values(0)) == ["x"] * 3 + ["y"] * 3 + ["z"] * 3
    assert list(forecast.xs("z", level=0).index) == [70, 71, 72]
    np.testing.assert_array_equal(forecast.to_numpy()[:, 0], np.concatenate(out))


# ---------------------------------------------------------------- covariates
def covariate_frame(n=100):
    t = np.arange(n)
    promo = (t % 7 == 0).astype(float)
    temp = np.cos(t / 5)
    y = pd.Series(trend_series(n) + 2 * promo, name="sales")
    X = pd.DataFrame({"temp": temp, "promo": promo})
    return y, X


def test_future_covariates_are_read_from_the_forecast_rows():
    y, X = covariate_frame()
    f = small(horizon=4).fit(y[:90], X[:90], future_covariates=["promo"])
    assert f.spec_.future_columns.tolist() == [1]
    future = X[90:94].copy()
    a = f.predict(X=future)
    future.loc[:, "temp"] = np.nan  # a past-only column is not read in forecast rows
    np.testing.assert_array_equal(f.predict(X=future), a)
    changed = future.copy()
    changed.loc[:, "promo"] = 1 - changed["promo"]
    assert not np.allclose(f.predict(X=changed), a)
    # a context y: X has its rows and then the forecast rows
    b = f.predict(y=y[:90], X=X[:94])
    np.testing.assert_array_equal(b.to_numpy(), a.to_numpy())


def test_past_covariates_enter_the_window_only():
    y, X = covariate_frame()
    f = small().fit(y, X)
    assert f.spec_.n_features == 3
    assert f.predict().shape == (3,)
    with pytest.raises(ValueError, match="must have 100"):
        f.predict(y=y, X=X[:99])


@pytest.mark.parametrize("bad, match", [
    (dict(future_covariates=["rain"]), "not a covariate of X"),
    (dict(future_covariates=[5]), "not a covariate of X"),
])
def test_unknown_future_covariates_are_refused(bad, match):
    y, X = covariate_frame()
    with pytest.raises(ValueError, match=match):
        small().fit(y, X, **bad)


def test_recursive_needs_every_covariate_known_in_the_future():
    y, X = covariate_frame()
    with pytest.raises(ValueError, match="every covariate must be known in the future"):
        small(strategy="recursive").fit(y, X, future_covariates=["promo"])
    f = small(strategy="recursive").fit(y[:90], X[:90], future_covariates=["promo", "temp"])
    assert f.predict(6, X=X[90:96]).shape == (6,)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("y, match", [
    (np.arange(10.0), "too short for window=8"),
    (np.r_[np.arange(30.0), np.nan], "NaN or infinity"),
    (np.zeros((3, 3, 3)), "must be 1D or 2D"),
    ([], "empty list"),
    (np.array(["a", "b"] * 20), "must hold numbers"),
])
def test_bad_series_are_refused(y, match):
    with pytest.raises((ValueError, TypeError), match=match):
        small().fit(y)


def test_bad_predict_calls_are_refused():
    y, X = covariate_frame()
    f = small().fit(y)
    with pytest.raises(ValueError, match="beyond the fitted horizon"):
        f.predict(4)
    with pytest.raises(ValueError, match="horizon must be an int"):
        f.predict(0)
    with pytest.raises(ValueError, match="last window=8"):
        f.predict(y=y[:5])
    with pytest.raises(ValueError, match="without covariates"):
        f.predict(y=y, X=X)
    with pytest.raises(ValueError, match="target columns"):
        f.predict(y=np.ones((20, 2)))
    g = small().fit(y[:90], X[:90], future_covariates=["promo"])
    with pytest.raises(ValueError, match="pass X with their 3 forecast rows"):
        g.predict()
    with pytest.raises(ValueError, match="must have 3"):
        g.predict(X=X[90:92])
    with pytest.raises(ValueError, match="X has 99 rows"):
        small().fit(y, X[:99])
    shifted = X.set_axis(X.index + 1)
    with pytest.raises(ValueError, match="X's index does not match y's"):
        small().fit(y, shifted)


@pytest.mark.parametrize("param, value", [
    ("window", 0), ("horizon", 1.5), ("strategy", "both"), ("scaling", "log"),
    ("per_series", 1), ("backend", "spark"), ("hidden_size", 0), ("cell", "tcn"),
])
def test_bad_parameters_name_themselves(param, value):
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        small(**{param: value}).fit(trend_series())


def test_a_failed_fit_keeps_the_fitted_model():
    y = trend_series()
    f = small().fit(y)
    before = f.predict()
    with pytest.raises(ValueError, match="NaN"):
        f.fit(np.r_[y, np.nan])
    with pytest.raises(ValueError, match="too short"):
        f.fit(y[:9])
    np.testing.assert_array_equal(f.predict(), before)


# ---------------------------------------------------------------- training machinery
def test_early_stopping_and_warm_start_reuse_the_regressor():
    ys = [trend_series(120, seed=i) for i in range(2)]
    f = small(early_stopping=True, max_epochs=30, n_iter_no_change=2,
              validation_fraction=0.2).fit(ys)
    assert len(f.validation_losses_) == f.n_iter_ == len(f.history_)
    g = small(warm_start=True, max_epochs=3).fit(ys)
    scale = g.scaling_.target_scale.copy()
    g.fit([s * 2 for s in ys])  # continues, with the first fit's scaling
    assert g.n_iter_ == 6
    np.testing.assert_array_equal(g.scaling_.target_scale, scale)
    with pytest.raises(ValueError, match="changed window"):
        g.set_params(window=9).fit(ys)
    with pytest.raises(ValueError, match="other targets or covariates"):
        g.set_params(window=8).fit([np.stack([s, s], axis=1) for s in ys])
    assert g.n_iter_ == 6


def test_callbacks_and_progress_reach_the_inner_training(capsys):
    from fastlstm.callbacks import Callback

    class Count(Callback):
        def __init__(self):
            self.epochs = []

        def on_epoch_end(self, ctx, epoch, logs):
            self.epochs.append((epoch, logs["loss"]))

    count = Count()
    f = small(max_epochs=3, callbacks=[count], verbose=2).fit(trend_series())
    assert [e for e, _ in count.epochs] == [1, 2, 3]
    assert [loss for _, loss in count.epochs] == f.loss_curve_
    err = capsys.readouterr().err
    assert [line.split(":")[0] for line in err.splitlines()] == [
        "Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_clone_pickle_and_params():
    f = small(cell="gru", horizon=2)
    assert clone(f).get_params() == f.get_params()
    f.fit(trend_series())
    copy = pickle.loads(pickle.dumps(f))
    np.testing.assert_array_equal(copy.predict(), f.predict())
    assert not hasattr(clone(f), "spec_")


# ---------------------------------------------------------------- save and load
def round_trip(model, **kw):
    buffer = io.BytesIO()
    fastlstm.save(model, buffer, **kw)
    return fastlstm.load(io.BytesIO(buffer.getvalue())), buffer.getvalue()


def test_save_and_load_a_forecaster_with_covariates_and_an_index():
    y, X = covariate_frame()
    y.index = pd.date_range("2020-01-01", periods=100, freq="D")
    X.index = y.index
    f = small(horizon=4, cell="rnn", random_state=np.random.RandomState(2)).fit(
        y[:90], X[:90], future_covariates=["promo"])
    loaded, _ = round_trip(f)
    pd.testing.assert_series_equal(loaded.predict(X=X[90:94]), f.predict(X=X[90:94]))
    assert [r["loss"] for r in loaded.history_] == [r["loss"] for r in f.history_]
    assert loaded.loss_curve_ == f.loss_curve_ and loaded.n_iter_ == f.n_iter_
    # training continues as it would have
    f.set_params(warm_start=True, max_epochs=2)
    loaded.set_params(warm_start=True, max_epochs=2)
    f.fit(y[:90], X[:90], future_covariates=["promo"])
    loaded.fit(y[:90], X[:90], future_covariates=["promo"])
    np.testing.assert_array_equal(loaded.predict(X=X[90:94]), f.predict(X=X[90:94]))


def test_saving_a_forecaster_with_callbacks_warns_once():
    import warnings

    from fastlstm.callbacks import Callback

    f = small(callbacks=[Callback()]).fit(trend_series())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded, _ = round_trip(f)
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    assert len(messages) == 1 and "this LSTMForecaster are not saved" in messages[0]
    assert loaded.callbacks is None and loaded.regressor_.callbacks is None
    np.testing.assert_array_equal(loaded.predict(), f.predict())


def test_save_and_load_a_panel_forecaster():
    ys = [trend_series(50 + 10 * i, seed=i) for i in range(3)]
    frames = [pd.DataFrame({"y": s}) for s in ys]
    panel = pd.concat(frames, keys=["x", "y", "z"], names=["series", "time"])
    f = small(strategy="recursive", horizon=1).fit(panel)
    loaded, _ = round_trip(f, include_optimizer=False)
    pd.testing.assert_frame_equal(loaded.predict(5), f.predict(5))


def test_tampered_forecaster_files_are_refused():
    import json
    import zipfile

    f = small().fit(trend_series())
    _, data = round_trip(f)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(entries["header.json"])
    header["state"]["spec"]["steps"] = 5
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, value in entries.items():
            zf.writestr(name, json.dumps(header) if name == "header.json" else value)
    with pytest.raises(ValueError, match="does not match the horizon"):
        fastlstm.load(io.BytesIO(out.getvalue()))


# ---------------------------------------------------------------- real data
def test_co2_one_step_beats_persistence():
    sm = pytest.importorskip("statsmodels.api")
    y = sm.datasets.co2.load_pandas().data["co2"].ffill()
    train, n_test = y[:-104], 104
    f = LSTMForecaster(window=52, hidden_size=16, max_epochs=15, random_state=0,
                       n_jobs=1).fit(train)
    preds = np.array([f.predict(1, y=y[:len(y) - n_test + i]).iloc[0] for i in range(n_test)])
    truth = y.to_numpy()[-n_test:]
    rmse = np.sqrt(np.mean((preds - truth) ** 2))
    persistence = np.sqrt(np.mean((y.to_numpy()[-n_test - 1:-1] - truth) ** 2))
    assert rmse < persistence


# ---------------------------------------------------------------- scikit-learn's checks
# fit(y, X) is a forecaster's signature, not fit(X, y): the checks that fit on
# tabular (X, y) do not apply; those about parameters, cloning and tags do
@pytest.mark.parametrize("check", [
    "check_get_params_invariance", "check_parameters_default_constructible",
    "check_no_attributes_set_in_init", "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params", "check_estimator_repr",
    "check_estimator_cloneable", "check_valid_tag_types", "check_mixin_order",
])
def test_scikit_learn_parameter_checks(check):
    import sklearn.utils.estimator_checks as checks

    fn = getattr(checks, check, None)
    if fn is None:
        pytest.skip(f"this scikit-learn has no {check}")
    fn("LSTMForecaster", LSTMForecaster())


def test_sunspots_twelve_years_beat_seasonal_naive():
    sm = pytest.importorskip("statsmodels.api")
    y = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    horizon, n_test = 12, 60
    f = LSTMForecaster(window=30, horizon=horizon, strategy="recursive", scaling="none",
                       hidden_size=32, max_epochs=300, early_stopping=True,
                       validation_fraction=0.2, random_state=0, n_jobs=1).fit(y[:-n_test])
    origins = range(len(y) - n_test, len(y) - horizon + 1)
    mae = np.mean([np.abs(f.predict(y=y[:s], horizon=horizon) - y[s:s + horizon]).mean()
                   for s in origins])
    # the value one 11-year cycle before
    seasonal_naive = np.mean([np.abs(y[s - 11 + np.arange(horizon) % 11]
                                     - y[s:s + horizon]).mean() for s in origins])
    assert mae < seasonal_naive
