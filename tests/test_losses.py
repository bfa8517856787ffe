"""Regression losses: absolute error and Huber (fastlstm.train.losses, LSTMRegressor(loss=...))."""

import numpy as np
import pytest

from fastlstm import LSTMRegressor
from fastlstm.train.losses import absolute_error, huber

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _numerical_grad(fn, pred, *args):
    g = np.zeros_like(pred)
    for idx in np.ndindex(pred.shape):
        old = pred[idx]
        pred[idx] = old + 1e-6
        up = fn(pred, *args)[0]
        pred[idx] = old - 1e-6
        down = fn(pred, *args)[0]
        pred[idx] = old
        g[idx] = (up - down) / 2e-6
    return g


@pytest.mark.parametrize("fn", [absolute_error, huber])
@pytest.mark.parametrize("shape, lengths", [((5, 2), None), ((4, 3, 2), [3, 1, 2, 3])])
def test_gradients_match_finite_differences(rng, fn, shape, lengths):
    pred = rng.normal(size=shape) * 2
    target = rng.normal(size=shape) * 2
    weight = rng.uniform(0.5, 2.0, size=shape[0])
    lengths = None if lengths is None else np.array(lengths)
    loss, grad = fn(pred, target, weight, lengths)
    np.testing.assert_allclose(grad, _numerical_grad(fn, pred, target, weight, lengths),
                               atol=1e-6)
    if lengths is not None:  # steps past the ends count for nothing
        assert np.all(grad[1, 1:] == 0)


def test_values_by_hand():
    pred, target = np.array([[0.5], [-3.0]]), np.zeros((2, 1))
    assert absolute_error(pred, target)[0] == pytest.approx(1.75)
    assert huber(pred, target)[0] == pytest.approx((0.125 + 2.5) / 2)
    assert huber(pred, target, delta=5.0)[0] == pytest.approx((0.125 + 4.5) / 2)


def _outlier_task():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 5, 1)).astype(np.float32)
    y = X.sum(axis=(1, 2))
    y_train = y.copy()
    y_train[:10] += 50.0  # a few gross outliers in the training targets
    return X, y, y_train


def test_robust_losses_resist_outliers_that_squared_error_follows():
    X, y, y_train = _outlier_task()
    scores = {}
    for loss in ("squared_error", "absolute_error", "huber"):
        reg = LSTMRegressor(hidden_size=8, max_epochs=40, learning_rate=0.02, random_state=0,
                            n_jobs=1, loss=loss).fit(X, y_train)
        scores[loss] = reg.score(X[10:], y[10:])
    # measured when written: squared error -1.3, absolute error 0.99, Huber 0.85
    assert scores["absolute_error"] > 0.9 and scores["huber"] > 0.7
    assert scores["squared_error"] < 0.5


def test_mae_is_absolute_error_and_bad_names_are_refused():
    X, y, _ = _outlier_task()
    kw = dict(hidden_size=4, max_epochs=2, random_state=0, n_jobs=1)
    a = LSTMRegressor(loss="mae", **kw).fit(X, y)
    b = LSTMRegressor(loss="absolute_error", **kw).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.loss_curve_ == b.loss_curve_
    with pytest.raises(ValueError, match="'loss' parameter"):
        LSTMRegressor(loss="l1", **kw).fit(X, y)


def test_per_step_outputs_train_with_huber():
    rng = np.random.RandomState(1)
    X = [rng.normal(size=(n, 1)) for n in rng.randint(3, 9, size=60)]
    Y = [np.cumsum(x[:, 0]) for x in X]
    reg = LSTMRegressor(hidden_size=8, max_epochs=30, learning_rate=0.03, random_state=0,
                        n_jobs=1, sequence_output=True, loss="huber").fit(X, Y)
    assert reg.score(X, Y) > 0.8
