"""SequenceScaler: per-feature standardization of 3D, 2D and ragged sequences."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastlstm import LSTMRegressor, SequenceScaler


@parametrize_with_checks([SequenceScaler(), SequenceScaler(with_mean=False),
                          SequenceScaler(channels_first=True)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _ragged(rng, n=7, F=3):
    return [rng.normal(5, 3, size=(rng.integers(1, 9), F)) for _ in range(n)]


def test_statistics_are_over_every_valid_step_of_every_sequence(rng):
    X = _ragged(rng)
    scaler = SequenceScaler().fit(X)
    steps = np.concatenate(X)
    np.testing.assert_allclose(scaler.mean_, steps.mean(axis=0))
    np.testing.assert_allclose(scaler.scale_, steps.std(axis=0))
    assert scaler.n_steps_seen_ == len(steps) and scaler.n_features_in_ == 3


@pytest.mark.parametrize("form", ["3d", "ragged", "1d-list", "2d", "3d-float32"])
def test_round_trip_keeps_the_form_and_leaves_the_input_alone(rng, form):
    if form == "3d":
        X = rng.normal(2, 4, size=(6, 5, 3))
    elif form == "3d-float32":
        X = rng.normal(2, 4, size=(6, 5, 3)).astype(np.float32)
    elif form == "ragged":
        X = _ragged(rng)
    elif form == "1d-list":
        X = [rng.normal(size=n) for n in (3, 8, 5)]
    else:
        X = rng.normal(1, 2, size=(6, 5))
    original = [np.array(x, copy=True) for x in X]
    scaler = SequenceScaler().fit(X)
    Z = scaler.transform(X)
    back = scaler.inverse_transform(Z)
    for x, o in zip(X, original, strict=True):
        np.testing.assert_array_equal(x, o)  # not modified
    if isinstance(X, list):
        assert isinstance(Z, list) and [z.shape for z in Z] == [np.shape(x) for x in X]
        steps = np.concatenate([np.reshape(z, (len(z), -1)) for z in Z])
    else:
        assert Z.shape == X.shape and Z.dtype == (np.float32 if form == "3d-float32"
                                                  else np.float64)
        steps = Z.reshape(-1, 1 if Z.ndim == 2 else Z.shape[-1])
    np.testing.assert_allclose(steps.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(steps.std(axis=0), 1, atol=1e-5)
    for b, x in zip(back, X, strict=True):
        np.testing.assert_allclose(b, x, rtol=1e-5, atol=1e-5)


def test_constant_features_keep_scale_one_and_options_switch_parts_off(rng):
    X = rng.normal(size=(4, 5, 2))
    X[:, :, 1] = 7.0
    scaler = SequenceScaler().fit(X)
    assert scaler.scale_[1] == 1.0
    np.testing.assert_allclose(scaler.transform(X)[:, :, 1], 0.0)
    only_scale = SequenceScaler(with_mean=False).fit(X)
    np.testing.assert_array_equal(only_scale.mean_, [0.0, 0.0])
    np.testing.assert_allclose(only_scale.transform(X)[:, :, 0],
                               X[:, :, 0] / X[:, :, 0].std())
    np.testing.assert_array_equal(SequenceScaler(with_std=False).fit(X).scale_, [1.0, 1.0])


def test_wrong_feature_count_and_bad_values_are_refused(rng):
    scaler = SequenceScaler().fit(rng.normal(size=(4, 5, 2)))
    with pytest.raises(ValueError, match="features per time step"):
        scaler.transform(rng.normal(size=(4, 5, 3)))
    bad = rng.normal(size=(4, 5, 2))
    bad[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        scaler.transform(bad)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_in_a_pipeline_and_a_grid_search(rng):
    X = [rng.normal(100, 50, size=(rng.integers(3, 8), 2)) for _ in range(60)]
    y = np.array([x[:, 0].mean() for x in X])
    pipe = make_pipeline(SequenceScaler(),
                         LSTMRegressor(hidden_size=8, max_epochs=40, learning_rate=0.03,
                                       random_state=0, n_jobs=1))
    search = GridSearchCV(pipe, {"lstmregressor__hidden_size": [4, 8]}, cv=2)
    search.fit(X, y)
    assert search.best_estimator_.predict(X[:5]).shape == (5,)
    # standardized inputs learn what raw inputs of this size do not
    raw = LSTMRegressor(hidden_size=8, max_epochs=40, learning_rate=0.03, random_state=0,
                        n_jobs=1)
    raw.fit(X, y)
    scaled = pipe.fit(X, y)
    assert scaled.score(X, y) > 0.95 > 0.8 > raw.score(X, y)  # 0.99 vs 0.66 when written


# ---------------------------------------------------------------- channels first


def _basic_motions_like(rng, n=40, channels=6, steps=100, dtype=np.float64):
    """(n_cases, n_channels, n_timepoints), each channel with its own offset and spread."""
    X = rng.normal(size=(n, channels, steps))
    X = X * np.arange(1, channels + 1)[None, :, None] * 3 + np.arange(channels)[None, :, None]
    return X.astype(dtype)


def test_channels_first_standardizes_each_channel_of_a_3d_array(rng):
    X = _basic_motions_like(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right layout: nothing to warn about
        scaler = SequenceScaler(channels_first=True).fit(X)
    assert scaler.mean_.shape == scaler.scale_.shape == (6,) and scaler.n_features_in_ == 6
    np.testing.assert_allclose(scaler.mean_, X.mean(axis=(0, 2)))
    np.testing.assert_allclose(scaler.scale_, X.std(axis=(0, 2)))
    Z = scaler.transform(X)
    assert Z.shape == X.shape and Z.flags.c_contiguous  # channels first out
    np.testing.assert_allclose(Z.mean(axis=(0, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(Z.std(axis=(0, 2)), 1, atol=1e-10)
    # the same numbers as the batch-first scaler on the transposed array
    batch_first = SequenceScaler().fit(X.transpose(0, 2, 1))
    np.testing.assert_allclose(Z, batch_first.transform(X.transpose(0, 2, 1)).transpose(0, 2, 1))
    np.testing.assert_allclose(scaler.inverse_transform(Z), X)


def test_channels_first_takes_a_ragged_list_of_channel_major_arrays(rng):
    X = [rng.normal(2, 5, size=(6, n)) * np.arange(1, 7)[:, None] for n in (40, 100, 75, 60)]
    scaler = SequenceScaler(channels_first=True).fit(X)
    steps = np.concatenate(X, axis=1)  # (channels, all time points)
    np.testing.assert_allclose(scaler.mean_, steps.mean(axis=1))
    assert scaler.n_steps_seen_ == steps.shape[1]
    Z = scaler.transform(X)
    assert isinstance(Z, list) and [z.shape for z in Z] == [x.shape for x in X]
    scaled = np.concatenate(Z, axis=1)
    np.testing.assert_allclose(scaled.mean(axis=1), 0, atol=1e-10)
    np.testing.assert_allclose(scaled.std(axis=1), 1, atol=1e-10)
    for back, x in zip(scaler.inverse_transform(Z), X, strict=True):
        np.testing.assert_allclose(back, x)
    # read batch-first, these arrays have different feature counts: the error says why
    with pytest.warns(UserWarning, match="channels_first=True"):
        with pytest.raises(ValueError, match="channels_first=True"):
            SequenceScaler().fit(X)


@pytest.mark.parametrize("channels_first", [False, True])
@pytest.mark.parametrize("form", ["list", "ragged", "3d"])
def test_float32_input_stays_float32(rng, form, channels_first):
    if form == "3d":
        X = rng.normal(size=(5, 3, 8) if channels_first else (5, 8, 3)).astype(np.float32)
    else:
        lengths = (8, 8, 8) if form == "list" else (8, 5, 9)
        X = [rng.normal(size=(3, n) if channels_first else (n, 3)).astype(np.float32)
             for n in lengths]
    scaler = SequenceScaler(channels_first=channels_first).fit(X)
    for out in (scaler.transform(X), scaler.inverse_transform(scaler.transform(X))):
        items = [out] if form == "3d" else out
        assert all(z.dtype == np.float32 for z in items)
        assert [z.shape for z in items] == [x.shape for x in ([X] if form == "3d" else X)]
    # float64 (or mixed) input still gives float64
    mixed = [np.asarray(x, dtype=np.float64 if i == 0 else np.float32) for i, x in enumerate(X)]
    if form != "3d":
        assert all(z.dtype == np.float64 for z in scaler.transform(mixed))


def test_channels_first_is_a_parameter_and_the_layout_is_fixed_by_fit(rng):
    scaler = SequenceScaler(channels_first=True)
    assert scaler.get_params()["channels_first"] is True
    assert clone(scaler).channels_first is True
    assert scaler.set_params(channels_first=False).channels_first is False
    X = _basic_motions_like(rng, n=5, steps=20)
    fitted = SequenceScaler(channels_first=True).fit(X)
    expected = fitted.transform(X)
    fitted.set_params(channels_first=False)  # takes effect at the next fit only
    np.testing.assert_array_equal(fitted.transform(X), expected)
    assert fitted.get_feature_names_out().tolist() == [f"x{i}" for i in range(6)]  # channels


def test_scalers_pickled_before_channels_first_still_load(rng):
    X = rng.normal(size=(4, 7, 2))
    scaler = SequenceScaler().fit(X)
    expected = scaler.transform(X)
    old = SequenceScaler.__new__(SequenceScaler)  # a fitted scaler as older versions kept it
    old.__dict__.update({k: v for k, v in scaler.__dict__.items()
                         if k not in ("channels_first", "_channels_first")})
    assert not hasattr(old, "channels_first")
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.get_params() == {"channels_first": False, "with_mean": True, "with_std": True}
    np.testing.assert_array_equal(loaded.transform(X), expected)
    assert clone(loaded).channels_first is False
    unfitted = SequenceScaler.__new__(SequenceScaler)
    unfitted.__dict__.update(with_mean=True, with_std=False)
    assert pickle.loads(pickle.dumps(unfitted)).get_params()["channels_first"] is False


def test_a_dataframe_is_never_modified_nor_needs_to_be_writable():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"t0": [1.0, 2.0, 4.0], "t1": [3.0, 5.0, 9.0]})
    original = df.copy()
    scaler = SequenceScaler().fit(df)
    Z = scaler.transform(df)
    pd.testing.assert_frame_equal(df, original)
    assert Z.shape == (3, 2) and abs(Z.mean()) < 1e-12
    one = df[["t0"]]  # one column: its memory may be handed out read-only
    np.testing.assert_allclose(SequenceScaler().fit(one).transform(one)[:, 0],
                               (one["t0"] - one["t0"].mean()) / one["t0"].std(ddof=0))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_channels_first_pipeline_equals_the_batch_first_one(rng):
    X = _basic_motions_like(rng, n=24, steps=30)
    y = X[:, 2, :].mean(axis=1)
    params = dict(hidden_size=5, max_epochs=3, random_state=0, n_jobs=1)
    cf = make_pipeline(SequenceScaler(channels_first=True),
                       LSTMRegressor(channels_first=True, **params)).fit(X, y)
    Xt = X.transpose(0, 2, 1)
    bf = make_pipeline(SequenceScaler(), LSTMRegressor(**params)).fit(Xt, y)
    np.testing.assert_allclose(cf.predict(X), bf.predict(Xt), rtol=1e-6)
