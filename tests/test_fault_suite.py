"""Fault suite: hostile estimator inputs, drawn by Hypothesis.

Every drawn call must end in one of two ways: a clear ``ValueError`` or
``TypeError`` with the fitted estimator exactly as it was, or a correct
result (finite predictions of the right shape, consistent fitted attributes).
"""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fastlstm import LSTMClassifier, LSTMRegressor

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning"),
]

N_FEATURES = 2
_rng = np.random.RandomState(0)
X_REF = _rng.normal(size=(24, 5, N_FEATURES)).astype(np.float32)
Y_REF = X_REF[:, :, 0].sum(axis=1)


def _fitted(cls):
    est = cls(hidden_size=4, max_epochs=2, batch_size=8, random_state=0, n_jobs=1)
    y = (Y_REF > 0).astype(int) if cls is LSTMClassifier else Y_REF
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pickle.dumps(est.fit(X_REF, y))


FITTED = {cls: _fitted(cls) for cls in (LSTMClassifier, LSTMRegressor)}


def _snapshot(est):
    """The fitted state: attributes, weights and predictions on fixed data."""
    attrs = {k: pickle.dumps(v) for k, v in vars(est).items()
             if k.endswith("_") and k != "network_"}
    weights = [w.copy() for w in est.network_.get_weights()]
    return attrs, weights, est.predict(X_REF)


def _assert_unchanged(est, snapshot):
    attrs, weights, pred = snapshot
    now = _snapshot(est)
    assert now[0] == attrs
    for a, b in zip(now[1], weights, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(now[2], pred)


# ------------------------------------------------------------------ inputs
_DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_, np.uint8,
                           np.float16, object, str, np.complex64])
_SPECIALS = st.sampled_from([np.nan, np.inf, -np.inf, 1e39, -1e300])


@st.composite
def dense_inputs(draw):
    """A valid 3D batch, then (more often than not) one thing wrong with it."""
    shape = [draw(st.integers(1, 6)), draw(st.integers(1, 5)), N_FEATURES]
    fault = draw(st.sampled_from(["none"] * 5 + ["ndim", "empty", "features", "special",
                                  "dtype", "dtype"]))
    if fault == "ndim":
        shape = shape[:draw(st.sampled_from([1, 2]))] if draw(st.booleans()) else shape + [2]
    elif fault == "empty":
        shape[draw(st.integers(0, 2))] = 0
    elif fault == "features":
        shape[2] = draw(st.sampled_from([1, 3]))
        shape[0] = draw(st.integers(1, 30))
    values = np.random.RandomState(draw(st.integers(0, 1000))).normal(size=shape)
    if fault == "special" and values.size:  # NaN, inf or a float32 overflow somewhere
        values.reshape(-1)[draw(st.integers(0, values.size - 1))] = draw(_SPECIALS)
    dtype = draw(_DTYPES) if fault == "dtype" else draw(st.sampled_from([np.float32,
                                                                           np.float64]))
    try:
        return values.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        return values


@st.composite
def ragged_inputs(draw):
    """Valid sequences of odd lengths, then (often) one thing wrong with one of them."""
    n = draw(st.integers(1, 5))
    seqs = [np.random.RandomState(i).normal(size=(draw(st.integers(1, 7)), N_FEATURES))
            for i in range(n)]
    fault = draw(st.sampled_from(["none"] * 5 + ["empty", "no-items", "width", "1d",
                                  "special", "lists", "float32", "int"]))
    i = draw(st.integers(0, n - 1))
    if fault == "no-items":
        seqs = []
    elif fault == "empty":
        seqs[i] = seqs[i][:0]
    elif fault == "width":
        seqs[i] = np.ones((3, draw(st.sampled_from([1, 3]))))
    elif fault == "1d":
        seqs[i] = seqs[i][:, 0]
    elif fault == "special":
        seqs[i].reshape(-1)[draw(st.integers(0, seqs[i].size - 1))] = draw(_SPECIALS)
    elif fault == "lists":
        seqs = [a.tolist() for a in seqs]
    elif fault == "float32":
        seqs = [a.astype(np.float32) for a in seqs]
    elif fault == "int":
        seqs[i] = (10 * seqs[i]).astype(int)
    return tuple(seqs) if draw(st.booleans()) else seqs


def _n_samples(X):
    try:
        return len(X)
    except TypeError:
        return 0


@st.composite
def targets(draw, X, classifier):
    n = _n_samples(X) + draw(st.sampled_from([0, 0, 0, 0, 0, 1, -1]))
    n = max(n, 0)
    if classifier:
        labels = draw(st.sampled_from([[0, 1], [0, 1], ["a", "b"], ["a", "b"], [0, "a"],
                                       [1.5, 2.5], [np.nan, 1], [3], [0, 1, 2]]))
        return [labels[i % len(labels)] for i in range(n)]
    y = np.random.RandomState(n).normal(size=n)
    if n and draw(st.integers(0, 3)) == 0:
        y[draw(st.integers(0, n - 1))] = draw(_SPECIALS)
    return y


def _refused_unchanged(est, call):
    """Run ``call``: True if it raised a clear error and left ``est`` as it was."""
    before = _snapshot(est)
    try:
        call()
    except (ValueError, TypeError) as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)  # says what is wrong
        _assert_unchanged(est, before)
        return True
    event("accepted")
    return False


def _check_result(est, X):
    """After a fit that succeeded: the model predicts finite values of the right shape."""
    pred = est.predict(X)
    n = _n_samples(X)
    assert len(pred) == n
    if isinstance(est, LSTMRegressor):
        assert np.isfinite(np.asarray(pred, dtype=float)).all()
    else:
        assert set(np.asarray(pred).tolist()) <= set(est.classes_.tolist())
    assert all(np.isfinite(w).all() for w in est.network_.get_weights())
    assert est.n_features_in_ >= 1


_SETTINGS = settings(max_examples=80, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.filter_too_much])


@_SETTINGS
@given(data=st.data(), cls=st.sampled_from([LSTMClassifier, LSTMRegressor]),
       ragged=st.booleans(), warm_start=st.booleans(), early_stopping=st.booleans())
def test_refit_is_a_clear_error_with_state_unchanged_or_a_correct_model(
        data, cls, ragged, warm_start, early_stopping):
    est = pickle.loads(FITTED[cls])
    est.set_params(warm_start=warm_start, early_stopping=early_stopping)
    X = data.draw(ragged_inputs() if ragged else dense_inputs())
    y = data.draw(targets(X, cls is LSTMClassifier))
    if _refused_unchanged(est, lambda: est.fit(X, y)):
        return
    _check_result(est, X)


@_SETTINGS
@given(data=st.data(), cls=st.sampled_from([LSTMClassifier, LSTMRegressor]),
       ragged=st.booleans())
def test_partial_fit_is_a_clear_error_with_state_unchanged_or_a_step(data, cls, ragged):
    est = pickle.loads(FITTED[cls])
    X = data.draw(ragged_inputs() if ragged else dense_inputs())
    y = data.draw(targets(X, cls is LSTMClassifier))
    weights = est.network_.get_weights()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if _refused_unchanged(est, lambda: est.partial_fit(X, y)):
            return
    _check_result(est, X)
    if any("non-finite" in str(w.message) for w in caught):
        # e.g. a target of 1e39: the step is refused and undone, with a warning
        assert est.n_iter_ == pickle.loads(FITTED[cls]).n_iter_
        for a, b in zip(est.network_.get_weights(), weights, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert est.n_iter_ == pickle.loads(FITTED[cls]).n_iter_ + 1


@_SETTINGS
@given(data=st.data(), cls=st.sampled_from([LSTMClassifier, LSTMRegressor]),
       ragged=st.booleans())
def test_predict_is_a_clear_error_or_a_correct_result(data, cls, ragged):
    est = pickle.loads(FITTED[cls])
    X = data.draw(ragged_inputs() if ragged else dense_inputs())
    before = _snapshot(est)
    try:
        pred = est.predict(X)
    except (ValueError, TypeError) as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)
    else:
        event("accepted")
        assert len(pred) == _n_samples(X)
        if cls is LSTMRegressor:
            assert np.isfinite(pred).all()
    _assert_unchanged(est, before)
