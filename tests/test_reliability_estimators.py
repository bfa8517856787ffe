"""Reliability at the estimator level: transactional fits, divergence, Ctrl-C,
the memory budget, and input forms."""

import pickle
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.train.optim import Adam

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _task(n=64, T=5, F=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    return X, X[:, :, 0].sum(axis=1)


def _small(cls=LSTMRegressor, **kw):
    params = dict(hidden_size=6, max_epochs=3, learning_rate=0.02, batch_size=16,
                  random_state=0, n_jobs=1)
    params.update(kw)
    return cls(**params)


def _fitted_state(est):
    """Everything a fit may change, as comparable values."""
    state = {k: v for k, v in vars(est).items()
             if k.endswith("_") and not k.startswith("__") and k != "network_"}
    state["weights"] = est.network_.get_weights()
    state["config"] = dict(est.network_.config)
    return state


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        va, vb = a[key], b[key]
        if isinstance(va, list) and va and isinstance(va[0], np.ndarray):
            for x, y in zip(va, vb, strict=True):
                np.testing.assert_array_equal(x, y, err_msg=key)
        else:
            np.testing.assert_equal(va, vb, err_msg=key)


# ------------------------------------------------------- 2: transactional fit
def test_failed_refit_leaves_the_regressor_as_it_was():
    X, y = _task()
    reg = _small().fit(X, y)
    before, pred = _fitted_state(reg), reg.predict(X)
    reg.set_params(early_stopping=True)
    with pytest.raises(ValueError, match="validation set is too small"):
        reg.fit(X[:5], 100 * y[:5] + 7)
    _assert_same(_fitted_state(reg), before)
    np.testing.assert_array_equal(reg.predict(X), pred)


def test_targets_whose_spread_overflows_are_refused_and_change_nothing():
    X, y = _task()
    reg = _small().fit(X, y)
    before, pred = _fitted_state(reg), reg.predict(X)
    huge = np.full(len(y), -0.056)
    huge[0] = -1e300  # finite, but its squared deviation overflows float64
    with pytest.raises(ValueError, match="too large to standardize"):
        reg.fit(X, huge)
    _assert_same(_fitted_state(reg), before)
    np.testing.assert_array_equal(reg.predict(X), pred)
    with pytest.raises(ValueError, match="too large to standardize"):
        _small().fit(X, huge)


def test_failed_refit_on_new_labels_keeps_the_classes():
    X, y = _task()
    clf = _small(LSTMClassifier).fit(X, (y > 0).astype(int))
    before, pred = _fitted_state(clf), clf.predict(X)
    clf.set_params(early_stopping=True)
    with pytest.raises(ValueError):
        clf.fit(X[:5], ["x", "y", "x", "y", "z"])
    _assert_same(_fitted_state(clf), before)
    np.testing.assert_array_equal(clf.predict(X), pred)
    assert clf.predict(X).dtype.kind == "i"


@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_a_continued_fit_that_fails_midway_changes_nothing(monkeypatch, how):
    X, y = _task()
    reg = _small(warm_start=how == "warm_start").fit(X, y)
    twin = pickle.loads(pickle.dumps(reg))
    before = _fitted_state(reg)
    calls = {"n": 0}
    real_step = Adam.step

    def failing_step(self, params, grads):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        real_step(self, params, grads)

    monkeypatch.setattr(Adam, "step", failing_step)
    with pytest.raises(RuntimeError, match="disk full"):
        reg.partial_fit(X, y) if how == "partial_fit" else reg.fit(X, y)
    monkeypatch.setattr(Adam, "step", real_step)
    _assert_same(_fitted_state(reg), before)
    # optimizer state and random generators too: the next call is the twin's
    if how == "partial_fit":
        reg.partial_fit(X, y)
        twin.partial_fit(X, y)
    else:
        reg.fit(X, y)
        twin.fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), twin.predict(X))


def test_a_first_fit_that_fails_leaves_the_estimator_unfitted():
    X, y = _task()
    reg = _small(early_stopping=True)
    with pytest.raises(ValueError):
        reg.fit(X[:5], y[:5])
    assert not any(k.endswith("_") and not k.startswith("__") for k in vars(reg))


# ------------------------------------------------- 3: divergence at the last step
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_divergence_on_the_last_update_is_caught_and_undone():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 4, 2)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    clf = LSTMClassifier(hidden_size=8, max_epochs=1, learning_rate=1e39, batch_size=400,
                         random_state=0, n_jobs=1)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        clf.fit(X, y)
    assert all(np.isfinite(w).all() for w in clf.network_.get_weights())
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    clone = pickle.loads(pickle.dumps(clf))  # a non-finite model could not be loaded
    np.testing.assert_array_equal(clone.predict_proba(X), proba)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_divergence_in_a_later_epoch_restores_that_epochs_start():
    X, y = _task()
    ref = _small(max_epochs=2).fit(X, y)
    reg = _small(max_epochs=5)
    calls = {"n": 0}
    real_step = Adam.step

    def exploding(self, params, grads):
        calls["n"] += 1
        real_step(self, params, grads)
        if calls["n"] == 10:  # the last step of the third epoch (4 per epoch) explodes
            params[0][...] = np.inf

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Adam, "step", exploding)
        with pytest.warns(ConvergenceWarning, match="epoch 3.*non-finite"):
            reg.fit(X, y)
    assert reg.n_iter_ == 2
    for a, b in zip(reg.network_.get_weights(), ref.network_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ 7: Ctrl-C
def _interrupt_at(monkeypatch, call, half=False):
    calls = {"n": 0}
    real_step = Adam.step

    def step(self, params, grads):
        calls["n"] += 1
        if calls["n"] == call:
            if half:  # Ctrl-C half-way through the update
                self.t += 1
                for p, g in zip(params[:3], grads[:3], strict=True):
                    p -= 0.1 * g
            raise KeyboardInterrupt
        real_step(self, params, grads)

    monkeypatch.setattr(Adam, "step", step)


def test_ctrl_c_propagates_and_keeps_the_last_complete_step(monkeypatch):
    X, y = _task()
    _interrupt_at(monkeypatch, 7)
    reference = _small(max_epochs=50)
    with pytest.raises(KeyboardInterrupt):
        reference.fit(X, y)
    _interrupt_at(monkeypatch, 7, half=True)
    reg = _small(max_epochs=50)
    with pytest.raises(KeyboardInterrupt):
        reg.fit(X, y)
    assert reg.n_iter_ == 1 and reg.t_ == 6 * 16 and len(reg.loss_curve_) == 1
    for a, b in zip(reg.network_.get_weights(), reference.network_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(reg.predict(X)).all()
    monkeypatch.undo()
    reg.partial_fit(X, y)  # and training can go on
    assert reg.n_iter_ == 2


def test_ctrl_c_stops_a_grid_search(monkeypatch):
    X, y = _task()
    _interrupt_at(monkeypatch, 2)
    search = GridSearchCV(_small(), {"hidden_size": [4, 6]}, cv=2, error_score="raise")
    with pytest.raises(KeyboardInterrupt):
        search.fit(X, y)
    assert not hasattr(search, "best_params_")


# ------------------------------------------------------------------ 9: memory
def test_a_fit_too_big_for_memory_is_refused_before_copying_x():
    X = np.broadcast_to(np.zeros(1), (2**20, 2**16, 1))  # 512 GiB as float64, no memory
    reg = _small()
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"LSTMRegressor.fit .* needs about .*available"):
        reg.fit(X, np.zeros(2**20))
    assert time.perf_counter() - t0 < 5
    assert not hasattr(reg, "network_")


def test_a_model_too_big_for_memory_is_refused_before_building():
    X, y = _task(8)
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"hidden_size=100000"):
        _small(hidden_size=100_000).fit(X, y)
    assert time.perf_counter() - t0 < 5


def test_a_predict_too_big_for_memory_is_refused_before_copying_x():
    X, y = _task()
    reg = _small().fit(X, y)
    with pytest.raises(MemoryError, match=r"predict .*needs about"):
        reg.predict(np.broadcast_to(np.zeros(1), (2**24, 2**16, 2)))


# ------------------------------------------------------------ 10: input forms
def test_an_equal_length_list_of_series_is_a_list_of_series():
    rng = np.random.RandomState(0)
    series = [rng.normal(size=6) for _ in range(40)]
    y = np.array([s.sum() for s in series])
    reg = _small().fit(series, y)
    assert reg.n_features_in_ == 1
    longer = [rng.normal(size=9) for _ in range(3)]  # other (equal) lengths predict too
    assert reg.predict(longer).shape == (3,)
    np.testing.assert_allclose(reg.predict(series[:3]),
                               reg.predict(np.stack(series[:3])[:, :, None]), rtol=1e-6)
    seq = _small(sequence_output=True).fit(series, [np.cumsum(s) for s in series])
    out = seq.predict(series[:2])
    assert isinstance(out, list) and out[0].shape == (6,)


@pytest.mark.parametrize("labels", [[0, "a"], (1.5, "b"), np.array([0, "a"], dtype=object)])
def test_labels_mixing_numbers_and_strings_are_refused(labels):
    X, _ = _task(4)
    y = list(labels) * 2
    clf = _small(LSTMClassifier)
    with pytest.raises(ValueError, match="mixes strings and numbers"):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_")


def test_dropout_with_one_layer_warns_in_fit():
    X, y = _task(16)
    with pytest.warns(UserWarning, match="dropout.*num_layers=1"):
        _small(dropout=0.3, max_epochs=1).fit(X, y)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dropout", category=UserWarning)
        _small(dropout=0.3, num_layers=2, max_epochs=1).fit(X, y)
