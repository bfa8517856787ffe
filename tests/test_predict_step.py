"""estimator.predict_step: stepping through a sequence gives predict on every prefix."""


import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import fastlstm

# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# The step and the whole-sequence kernels run the same math (they agree to the
# bit today); the tolerance leaves room for kernels that round differently.
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}

CASES = {
    "clf-lstm": (fastlstm.LSTMClassifier, "labels", dict()),
    "clf-lstm-2layers-f64": (fastlstm.LSTMClassifier, "labels",
                             dict(num_layers=2, dtype="float64")),
    "clf-rnn-2layers": (fastlstm.LSTMClassifier, "three", dict(cell="rnn", num_layers=2)),
    "reg-lstm": (fastlstm.LSTMRegressor, "values", dict()),
    "reg-rnn-multi-f64": (fastlstm.LSTMRegressor, "multi", dict(cell="rnn", dtype="float64")),
    "reg-sequence": (fastlstm.LSTMRegressor, "per-step", dict(sequence_output=True)),
    "reg-sequence-multi-rnn": (fastlstm.LSTMRegressor, "per-step-2",
                               dict(sequence_output=True, cell="rnn", num_layers=2)),
}


def _fitted(name):
    cls, kind, kwargs = CASES[name]
    X = np.random.default_rng(0).uniform(-1, 1, (40, 7, 2))
    y = {"labels": lambda: np.where(X[:, -1, 0] > 0, "up", "down"),
         "three": lambda: np.digitize(X[:, -1, 1], [-0.3, 0.3]),
         "values": lambda: 20 * X[:, :, 0].sum(axis=1) + 1,
         "multi": lambda: np.column_stack([X[:, -1, 0], 50 * X[:, 0, 1]]),
         "per-step": lambda: 10 * np.cumsum(X[:, :, 0], axis=1),
         "per-step-2": lambda: np.cumsum(X, axis=1)}[kind]()
    est = cls(hidden_size=6, max_epochs=2, batch_size=8, random_state=0, **kwargs).fit(X, y)
    return est, X


def _arrays(state, copy=False):
    """The arrays of a state: (h, c) for an LSTM, h for an RNN, none before the first step."""
    arrays = [] if state is None else list(state) if isinstance(state, tuple) else [state]
    return [a.copy() for a in arrays] if copy else arrays


@pytest.mark.parametrize("name", list(CASES))
def test_stepping_equals_predict_on_every_prefix(name):
    est, X = _fitted(name)
    X = X[:9]
    tol = TOL[est.dtype]
    state = None
    for t in range(X.shape[1]):
        before = _arrays(state, copy=True)
        y_t, new_state = est.predict_step(X[:, t], state)
        for a, b in zip(_arrays(state), before, strict=True):  # the state passed in is kept
            np.testing.assert_array_equal(a, b)
        state = new_state
        prefix = X[:, :t + 1]
        if isinstance(est, fastlstm.LSTMClassifier):
            want = est.predict_proba(prefix)
        else:
            want = est.predict(prefix)
            if est.sequence_output:
                want = want[:, -1]
        assert y_t.shape == want.shape
        np.testing.assert_allclose(y_t, want, **tol)


def test_streams_are_independent_of_batch_mates():
    est, X = _fitted("reg-lstm")
    state_all, state_one = None, None
    for t in range(X.shape[1]):
        y_all, state_all = est.predict_step(X[:5, t], state_all)
        y_one, state_one = est.predict_step(X[2:3, t], state_one)
        np.testing.assert_allclose(y_one, y_all[2:3], rtol=1e-5, atol=1e-6)


def test_univariate_model_takes_one_value_per_sequence():
    X = np.random.default_rng(0).uniform(size=(30, 5))  # fitted on a 2D table
    reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=2, random_state=0).fit(X, X.sum(1))
    state = None
    for t in range(5):
        y_t, state = reg.predict_step(X[:, t], state)
    np.testing.assert_allclose(y_t, reg.predict(X), rtol=1e-5, atol=1e-6)


def test_refusals():
    with pytest.raises(NotFittedError):
        fastlstm.LSTMRegressor().predict_step(np.zeros((1, 2)))
    X = np.random.default_rng(0).uniform(size=(30, 4, 2))
    bi = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=1, bidirectional=True,
                                 random_state=0).fit(X, X[:, -1, 0] > 0.5)
    with pytest.raises(ValueError, match="needs a unidirectional model.*bidirectional"):
        bi.predict_step(X[:, 0])
    est, X = _fitted("reg-lstm")
    with pytest.raises(ValueError, match=r"x_t must have shape \(n_samples >= 1, 2\)"):
        est.predict_step(X[:, :2])      # two steps, not one
    with pytest.raises(ValueError, match=r"got shape \(40,\)"):
        est.predict_step(X[:, 0, 0])    # 1D for a two-feature model
    with pytest.raises(ValueError, match="NaN"):
        est.predict_step(np.full((2, 2), np.nan))
    _, state = est.predict_step(X[:3, 0])
    with pytest.raises(ValueError, match="state"):
        est.predict_step(X[:4, 1], state)   # a state for another batch size
    rnn, X = _fitted("reg-rnn-multi-f64")
    _, state = rnn.predict_step(X[:3, 0])
    with pytest.raises(ValueError, match="state must be the array predict_step returned"):
        rnn.predict_step(X[:4, 1], state)


@pytest.mark.parametrize("name", ["clf-lstm", "reg-lstm", "reg-rnn-multi-f64"])
def test_a_step_after_the_weights_change_reads_the_new_weights(name):
    # what a step gathers from the readout (a regressor's scaled copy) follows
    # partial_fit's in-place updates and set_weights
    est, X = _fitted(name)
    tol = TOL[est.dtype]

    def streamed():
        state = None
        for t in range(X.shape[1]):
            y_t, state = est.predict_step(X[:6, t], state)
        return y_t

    def predicted():
        if isinstance(est, fastlstm.LSTMClassifier):
            return est.predict_proba(X[:6])
        return est.predict(X[:6])

    first = streamed()
    est.partial_fit(X, est.predict(X))  # an epoch on its own predictions: new weights
    trained = streamed()
    assert not np.allclose(trained, first, rtol=0, atol=1e-9)
    np.testing.assert_allclose(trained, predicted(), **tol)
    weights = est.network_.get_weights()
    weights[-1] = weights[-1] + 0.5  # the readout's bias
    est.network_.set_weights(weights)
    np.testing.assert_allclose(streamed(), predicted(), **tol)
