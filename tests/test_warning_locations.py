"""fastlstm's warnings point at the user's line, however deep they are raised.

A warning reported inside the package gives the user a line they cannot act
on and escapes ``warnings.filterwarnings(module=...)`` on their own module;
each of these is raised several frames into fastlstm (a regressor inside a
forecaster, a fleet, a trainer hook, the save path).
"""

import io
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastlstm
from fastlstm import LSTMClassifier, LSTMForecaster
from fastlstm.callbacks import Callback


def _raised_here(category, call):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        call()
    ours = [w for w in seen if issubclass(w.category, category)]
    assert ours, f"no {category.__name__} was raised"
    for w in ours:
        assert w.filename == __file__, (w.filename, str(w.message))
    return ours


def _digits_like(n=24, steps=5, features=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, steps, features))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def test_the_epoch_limit_warning_of_an_estimator():
    X, y = _digits_like()
    model = LSTMClassifier(hidden_size=4, max_epochs=1, random_state=0, n_jobs=1)
    _raised_here(ConvergenceWarning, lambda: model.fit(X, y))


@pytest.mark.parametrize("per_series", [False, True])
def test_the_epoch_limit_warning_of_a_forecaster_and_a_fleet(per_series):
    y = np.sin(np.arange(120) / 5.0)[None, :] + np.arange(2)[:, None]
    model = LSTMForecaster(window=8, hidden_size=4, max_epochs=1, random_state=0, n_jobs=1,
                           per_series=per_series)
    _raised_here(ConvergenceWarning, lambda: model.fit(list(y)))


def test_the_rollback_warning_of_a_non_finite_step():
    X, y = _digits_like()
    # a finite learning rate whose first bias-corrected step (lr / (1 - beta_1))
    # overflows float32: the updated weights are not finite on every variant
    model = LSTMClassifier(hidden_size=4, max_epochs=2, learning_rate=1e38, random_state=0,
                           n_jobs=1)
    seen = _raised_here(ConvergenceWarning, lambda: model.fit(X, y))
    assert any("non-finite" in str(w.message) for w in seen)


def test_the_unsaved_callbacks_warning_of_save():
    X, y = _digits_like()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LSTMClassifier(hidden_size=4, max_epochs=1, random_state=0, n_jobs=1,
                               callbacks=[Callback()]).fit(X, y)
    _raised_here(UserWarning, lambda: fastlstm.save(model, io.BytesIO()))
