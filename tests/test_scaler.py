"""SequenceScaler: per-feature standardization of 3D, 2D and ragged sequences."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastlstm import LSTMRegressor, SequenceScaler


@parametrize_with_checks([SequenceScaler(), SequenceScaler(with_mean=False)])
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
