"""Validation control: X_val/y_val (with and without early stopping), the
temporal hold-out, validation losses, and early stopping on the loss."""

import numpy as np
import pytest

from fastlstm import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _windows(n=80, T=6, seed=0):
    """Windows over one series, in time order; feature 1 holds the window's index."""
    rng = np.random.RandomState(seed)
    series = np.cumsum(rng.normal(size=n + T))
    X = np.stack([series[i:i + T] for i in range(n)])[:, :, None]
    X = np.concatenate([X, np.broadcast_to(np.arange(n)[:, None, None], X.shape)], axis=2)
    return X.astype(np.float64), series[T:T + n]


def _spy(est, cls):
    seen = []

    def spy(Xs, target, weight, out=None):
        seen.append(Xs)
        return cls._validation_score(est, Xs, target, weight, out)

    est._validation_score = spy
    return seen


def _small(cls=LSTMRegressor, **kw):
    params = dict(hidden_size=6, max_epochs=4, batch_size=16, learning_rate=0.02,
                  random_state=0, n_jobs=1, early_stopping=True)
    params.update(kw)
    return cls(**params)


def test_temporal_hold_out_is_the_latest_samples():
    X, y = _windows()
    reg = _small(validation_split="last", validation_fraction=0.2)
    seen = _spy(reg, LSTMRegressor)
    reg.fit(X, y)
    held_out = seen[0].dense[:, 0, 1]
    np.testing.assert_array_equal(held_out, np.arange(64, 80))  # the last 20%, in order
    assert reg.t_ == 4 * 64  # trained on the first 64 only
    # the random split (the default) mixes earlier windows into validation
    rand = _small(validation_fraction=0.2)
    seen = _spy(rand, LSTMRegressor)
    rand.fit(X, y)
    assert seen[0].dense[:, 0, 1].min() < 64


def test_temporal_hold_out_is_not_stratified_for_classifiers():
    X, y = _windows()
    labels = (np.arange(80) >= 40).astype(int)  # all of the end is class 1
    clf = _small(LSTMClassifier, validation_split="last", validation_fraction=0.25)
    seen = _spy(clf, LSTMClassifier)
    clf.fit(X, labels)
    np.testing.assert_array_equal(seen[0].dense[:, 0, 1], np.arange(60, 80))


def test_explicit_validation_data_is_used_and_all_of_x_is_trained_on():
    X, y = _windows()
    reg = _small(max_epochs=3)
    seen = _spy(reg, LSTMRegressor)
    reg.fit(X[:60], y[:60], X_val=X[60:], y_val=y[60:])
    assert all(s.n_samples == 20 for s in seen)
    np.testing.assert_array_equal(seen[0].dense[:, 0, 1], np.arange(60, 80))
    assert reg.t_ == 3 * 60
    assert len(reg.validation_losses_) == len(reg.validation_scores_) == reg.n_iter_ == 3


def test_validation_losses_are_the_training_loss_on_the_held_out_data():
    X, y = _windows()
    reg = _small(max_epochs=3, loss="absolute_error")
    reg.fit(X[:60], y[:60], X_val=X[60:], y_val=y[60:])
    z = (y[60:] - reg._y_mean[0]) / reg._y_scale[0]  # the standardized scale
    pred = (reg.predict(X[60:]) - reg._y_mean[0]) / reg._y_scale[0]
    assert reg.validation_losses_[-1] == pytest.approx(np.abs(pred - z).mean(), rel=1e-4)


def test_early_stopping_on_the_loss_keeps_the_epoch_of_least_validation_loss():
    X, y = _windows(120)
    reg = _small(max_epochs=60, scoring="loss", n_iter_no_change=3, learning_rate=0.05)
    reg.fit(X[:90], y[:90], X_val=X[90:], y_val=y[90:])
    losses = np.array(reg.validation_losses_)
    assert reg.n_iter_ < 60  # it stopped on the plateau of the validation loss
    np.testing.assert_array_equal(reg.validation_scores_, -losses)
    assert reg.best_validation_score_ == -losses.min()
    # the restored weights are those of the best epoch: predicting gives its loss
    pred = (reg.predict(X[90:]) - reg._y_mean[0]) / reg._y_scale[0]
    z = (y[90:] - reg._y_mean[0]) / reg._y_scale[0]
    assert np.mean((pred - z) ** 2) == pytest.approx(losses.min(), rel=1e-4)


@pytest.mark.parametrize("kwargs, fit_kwargs, match", [
    (dict(early_stopping=False), dict(X_val=True), "X_val was given without y_val"),
    ({}, dict(X_val=True), "together"),
    ({}, dict(y_val=True), "y_val was given without X_val"),
    ({}, dict(X_val="wide", y_val=True), "features"),
    (dict(validation_split="first"), {}, "validation_split"),
    (dict(scoring="r2"), {}, "scoring"),
])
def test_bad_validation_settings_are_refused_and_change_nothing(kwargs, fit_kwargs, match):
    X, y = _windows()
    reg = _small(**kwargs)
    if fit_kwargs.get("X_val") is True:
        fit_kwargs["X_val"] = X[:10]
    elif fit_kwargs.get("X_val") == "wide":
        fit_kwargs["X_val"] = np.ones((10, 6, 3))
    if fit_kwargs.get("y_val") is True:
        fit_kwargs["y_val"] = y[:10]
    with pytest.raises(ValueError, match=match):
        reg.fit(X, y, **fit_kwargs)
    assert not hasattr(reg, "network_")



def _sum_task(n=80, seed=0):
    X = np.random.default_rng(seed).uniform(size=(n, 5, 1))
    return X, X.sum(axis=(1, 2))


def test_validation_data_alone_is_recorded_every_epoch_and_stops_nothing():
    X, total = _sum_task()
    y = (total > np.median(total)).astype(int)
    kw = dict(max_epochs=10, tol=1e-4, n_iter_no_change=1)
    # with early stopping this validation stops the training early ...
    early = _small(LSTMClassifier, **kw).fit(X[:60], y[:60], X_val=X[60:], y_val=y[60:])
    assert early.n_iter_ < 10
    # ... without, it is recorded only: training runs to max_epochs as it does without it
    plain = _small(LSTMClassifier, early_stopping=False, **kw).fit(X[:60], y[:60])
    assert plain.n_iter_ == 10
    with pytest.warns(Warning, match=r"Maximum epochs \(10\) reached"):
        clf = _small(LSTMClassifier, early_stopping=False, **kw).fit(
            X[:60], y[:60], X_val=X[60:], y_val=y[60:])
    assert clf.n_iter_ == 10 == len(clf.loss_curve_)
    assert len(clf.validation_scores_) == len(clf.validation_losses_) == 10
    assert clf.validation_scores_[:early.n_iter_] == early.validation_scores_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.history_["validation_score"] == clf.validation_scores_
    # each score is that epoch's model: the last one is the final model's accuracy
    assert clf.validation_scores_[-1] == clf.score(X[60:], y[60:])
    # validation only looks: the same training, and the last weights are kept
    assert clf.loss_curve_ == plain.loss_curve_
    for a, b in zip(clf.network_.get_weights(), plain.network_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not hasattr(plain, "validation_scores_")


def test_validation_data_alone_feeds_callbacks_on_validation_values():
    from fastlstm.callbacks import EarlyStopping

    X, y = _sum_task()
    reg = _small(early_stopping=False, max_epochs=30, n_iter_no_change=100,
                 callbacks=[EarlyStopping("validation_loss", patience=1)])
    reg.fit(X[:60], y[:60], X_val=X[60:], y_val=-y[60:])  # its loss grows as reg learns
    assert reg.n_iter_ < 30 and len(reg.validation_losses_) == reg.n_iter_


def _bad_validation_data(what, X_val, y_val):
    if what == "nan":
        X_val = X_val.copy()
        X_val[3, 2, 0] = np.nan
        return X_val
    if what == "nan_y":
        return np.where(np.arange(len(y_val)) == 4, np.nan, y_val)
    return {"X": X_val, "y": y_val, "wide": np.ones((len(X_val), 5, 2)),
            "short": y_val[:-1], "one": X_val[:1], "one_y": y_val[:1]}[what]


@pytest.mark.parametrize("fit_kwargs, match", [
    (dict(X_val="X"), "X_val was given without y_val"),
    (dict(y_val="y"), "y_val was given without X_val"),
    (dict(X_val="X", y_val="short"), "y_val.*inconsistent numbers of samples"),
    (dict(X_val="X", y_val="nan_y"), "y_val.*NaN"),
    (dict(X_val="nan", y_val="y"), "X_val.*NaN"),
    (dict(X_val="wide", y_val="y"), "X_val.*features"),
    (dict(X_val="one", y_val="one_y"), "at least 2 sequences"),
])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_bad_validation_data_is_refused_as_bad_training_data(fit_kwargs, match,
                                                             early_stopping):
    X, y = _sum_task()
    given = {k: _bad_validation_data(v, X[60:], y[60:]) for k, v in fit_kwargs.items()}
    reg = _small(early_stopping=early_stopping)
    with pytest.raises(ValueError, match=match):
        reg.fit(X[:60], y[:60], **given)
    assert not hasattr(reg, "network_")  # the failed fit changed nothing


def test_unknown_labels_in_validation_targets_are_refused():
    X, total = _sum_task()
    y = (total > np.median(total)).astype(int)
    clf = _small(LSTMClassifier, early_stopping=False)
    with pytest.raises(ValueError, match="y_val.*labels not in classes_"):
        clf.fit(X[:60], y[:60], X_val=X[60:], y_val=np.full(20, 7))
    assert not hasattr(clf, "network_")
