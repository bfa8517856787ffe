"""LSTMClassifier and LSTMRegressor: learning, inputs, training control, ecosystem."""

import io
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import fastlstm
from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.train.network import Progress, SequenceNet, softmax_cross_entropy, squared_error
from fastlstm.train.optim import Adam

# ------------------------------------------------------------------ data


def _sign_task(n=200, T=6, F=2, seed=0):
    """Label: is the sum of the first channel over time positive."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    return X, y


def _ragged_task(n=120, F=2, seed=0, max_len=12):
    rng = np.random.RandomState(seed)
    X = [rng.normal(size=(rng.randint(2, max_len + 1), F)).astype(np.float32) for _ in range(n)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    return X, y


def _adding_problem(n, T, rng):
    """Two marked values among uniform noise; the target is their sum."""
    X = np.zeros((n, T, 2), dtype=np.float32)
    X[:, :, 0] = rng.uniform(size=(n, T))
    for i in range(n):
        X[i, rng.choice(T, 2, replace=False), 1] = 1.0
    y = (X[:, :, 0] * X[:, :, 1]).sum(axis=1)
    return X, y


def _small(cls=LSTMClassifier, **kw):
    params = dict(hidden_size=8, max_epochs=15, learning_rate=0.02, batch_size=16,
                  random_state=0, n_jobs=1)
    params.update(kw)
    return cls(**params)


def _fit_quiet(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _weights(est):
    return est.network_.get_weights()


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ learning


def test_digits_accuracy():
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # 8 time steps of 8 pixels
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    clf = LSTMClassifier(hidden_size=64, max_epochs=20, learning_rate=1e-2,
                         n_iter_no_change=20, random_state=0, n_jobs=2)
    _fit_quiet(clf, X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95
    assert clf.n_iter_ == 20 and clf.t_ == 20 * len(X_train)
    assert clf.loss_curve_[-1] < 0.2 * clf.loss_curve_[0]


def test_adding_problem():
    rng = np.random.RandomState(0)
    X, y = _adding_problem(2000, 100, rng)
    X_test, y_test = _adding_problem(500, 100, rng)
    baseline = np.mean((y_test - y.mean()) ** 2)
    assert baseline > 0.14  # predicting the mean scores about 1/6
    reg = LSTMRegressor(hidden_size=32, max_epochs=25, learning_rate=1e-2, batch_size=16,
                        n_iter_no_change=25, random_state=0, n_jobs=2)
    _fit_quiet(reg, X, y)
    mse = np.mean((reg.predict(X_test) - y_test) ** 2)
    assert mse < 0.05, mse


def test_multi_output_regression():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(400, 8, 2)).astype(np.float32)
    # mean of channel 0, and channel 1 at the first step minus at the last
    Y = np.column_stack([X[:, :, 0].mean(axis=1), X[:, 0, 1] - X[:, -1, 1]])
    reg = _small(LSTMRegressor, hidden_size=16, max_epochs=40, learning_rate=0.01)
    _fit_quiet(reg, X[:300], Y[:300])
    pred = reg.predict(X[300:])
    assert pred.shape == (100, 2)
    assert np.all(r2_score(Y[300:], pred, multioutput="raw_values") > 0.9)
    assert reg.score(X[300:], Y[300:]) > 0.9


def test_single_column_y_keeps_its_shape():
    X, y = _sign_task(60)
    reg = _small(LSTMRegressor, max_epochs=2)
    _fit_quiet(reg, X, y.reshape(-1, 1).astype(float))
    assert reg.predict(X).shape == (60, 1)
    _fit_quiet(reg, X, y.astype(float))
    assert reg.predict(X).shape == (60,)


def _running_mean_targets(x):
    steps = np.arange(1, len(x) + 1)[:, None]
    return np.column_stack([np.cumsum(x[:, 0]) / steps[:, 0], 2 * x[:, 1]])


def test_sequence_output_regression_dense():
    rng = np.random.RandomState(1)
    X = rng.uniform(-1, 1, size=(300, 10, 2)).astype(np.float32)
    Y = np.stack([_running_mean_targets(x) for x in X])
    reg = _small(LSTMRegressor, hidden_size=16, max_epochs=30, learning_rate=0.01,
                 sequence_output=True)
    _fit_quiet(reg, X[:240], Y[:240])
    pred = reg.predict(X[240:])
    assert pred.shape == (60, 10, 2)
    assert reg.score(X[240:], Y[240:]) > 0.9
    # one output: y (n, T) gives predictions (n, T)
    reg1 = _small(LSTMRegressor, max_epochs=2, sequence_output=True)
    _fit_quiet(reg1, X, Y[:, :, 0])
    assert reg1.predict(X).shape == (300, 10)


def test_sequence_output_regression_ragged():
    rng = np.random.RandomState(2)
    X = [rng.uniform(-1, 1, size=(rng.randint(3, 15), 2)).astype(np.float32)
         for _ in range(300)]
    Y = [_running_mean_targets(x) for x in X]
    reg = _small(LSTMRegressor, hidden_size=16, max_epochs=30, learning_rate=0.01,
                 sequence_output=True)
    _fit_quiet(reg, X[:240], Y[:240])
    pred = reg.predict(X[240:])
    assert isinstance(pred, list) and len(pred) == 60
    assert all(p.shape == (len(x), 2) for p, x in zip(pred, X[240:], strict=True))
    assert reg.score(X[240:], Y[240:]) > 0.9
    # ragged predictions equal one-by-one predictions (no padding at all)
    for i in (0, 7, 59):
        np.testing.assert_allclose(reg.predict([X[240 + i]])[0], pred[i], rtol=1e-4, atol=1e-5)


def test_sequence_output_early_stopping_on_ragged_input():
    rng = np.random.RandomState(3)
    X = [rng.uniform(-1, 1, size=(rng.randint(2, 9), 2)) for _ in range(80)]
    Y = [_running_mean_targets(x)[:, 0] for x in X]  # one output: y_i is (T_i,)
    reg = _small(LSTMRegressor, sequence_output=True, early_stopping=True,
                 validation_fraction=0.25, max_epochs=4)
    _fit_quiet(reg, X, Y)
    assert len(reg.validation_scores_) == reg.n_iter_ == 4
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    pred = reg.predict(X[:3])
    assert [p.shape for p in pred] == [(len(x),) for x in X[:3]]


def test_padded_steps_do_not_affect_sequence_loss():
    pred = np.random.RandomState(0).normal(size=(2, 4, 1))
    target = np.zeros((2, 4, 1))
    lengths = np.array([2, 4])
    loss, grad = squared_error(pred, target, None, lengths)
    want = (np.sum(pred[0, :2] ** 2) + np.sum(pred[1] ** 2)) / 6
    assert loss == pytest.approx(want)
    assert np.all(grad[0, 2:] == 0) and np.all(grad[1] != 0)


def test_ragged_input_matches_padded_call_with_lengths():
    X, y = _ragged_task()
    clf = _small(max_epochs=5)
    _fit_quiet(clf, X, y)
    proba = clf.predict_proba(X)
    # the same network on one padded batch with lengths, in the original order
    T = max(len(x) for x in X)
    padded = np.zeros((len(X), T, 2), dtype=np.float32)
    for i, x in enumerate(X):
        padded[i, :len(x)] = x
    lengths = np.array([len(x) for x in X])
    logits = clf.network_.forward(padded, lengths)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba, z / z.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    # and one sequence at a time
    for i in (0, 5, 50):
        np.testing.assert_allclose(clf.predict_proba([X[i]])[0], proba[i], rtol=1e-4,
                                   atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


def test_equal_length_list_same_as_array():
    X, y = _sign_task(50)
    clf = _small(max_epochs=3)
    _fit_quiet(clf, X, y)
    np.testing.assert_array_equal(clf.predict_proba(list(X)), clf.predict_proba(X))


def test_ragged_training_beats_chance():
    X, y = _ragged_task(300)
    clf = _small(max_epochs=30, hidden_size=16, learning_rate=0.01)
    _fit_quiet(clf, X[:240], y[:240])
    assert clf.score(X[240:], y[240:]) > 0.85


def test_string_labels_round_trip():
    X, y = _sign_task(200)
    labels = np.array(["negative", "positive"], dtype=object)[y]
    clf = _small(max_epochs=20)
    _fit_quiet(clf, X, labels)
    assert list(clf.classes_) == ["negative", "positive"]
    pred = clf.predict(X)
    assert pred.dtype == labels.dtype and set(pred) <= {"negative", "positive"}
    assert np.mean(pred == labels) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10)


def test_multiclass_and_univariate_2d_input():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 7))  # 2D: univariate series of 7 steps
    y = np.digitize(X.sum(axis=1), [-1.0, 1.0])  # 3 classes
    clf = _small(max_epochs=40, hidden_size=16)
    _fit_quiet(clf, X, y)
    assert clf.n_features_in_ == 7 and clf.network_.config["n_features"] == 1
    assert clf.predict_proba(X).shape == (300, 3)
    assert clf.score(X, y) > 0.8
    # univariate series of other lengths go in as 3D or as a list
    assert clf.predict(X[:, :5, None]).shape == (300,)
    assert clf.predict([X[0, :3], X[1]]).shape == (2,)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_other_optimizers_learn(optimizer):
    X, y = _sign_task(200)
    lr = 0.1 if optimizer == "sgd" else 0.02
    clf = _small(optimizer=optimizer, learning_rate=lr, max_epochs=25, weight_decay=1e-4)
    _fit_quiet(clf, X, y)
    assert clf.score(X, y) > 0.9


def test_bidirectional_stacked_with_dropout():
    # the label is in the first step: easy for the backward direction
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 15, 1)).astype(np.float32)
    y = (X[:, 0, 0] > 0).astype(int)
    clf = _small(bidirectional=True, num_layers=2, dropout=0.2, max_epochs=20)
    _fit_quiet(clf, X, y)
    assert clf.network_.weight.shape == (2, 16)
    assert "weight_hh_l1_reverse" in clf.network_.layer.state_dict()
    assert clf.score(X, y) > 0.9


# ------------------------------------------------------------------ weights


def test_sample_weight_none_equals_ones():
    X, y = _sign_task(80)
    a = _fit_quiet(_small(max_epochs=3), X, y)
    b = _fit_quiet(_small(max_epochs=3), X, y, sample_weight=np.ones(80))
    _assert_same_weights(a, b)


def test_zero_weight_samples_are_ignored():
    X, y = _sign_task(300)
    noisy = y.copy()
    noisy[:150] = 1 - noisy[:150]  # flip half the labels...
    w = np.r_[np.zeros(150), np.ones(150)]  # ...and give them no weight
    clf = _fit_quiet(_small(max_epochs=25), X, noisy, sample_weight=w)
    assert clf.score(X, y) > 0.9


def test_class_weight_dict_equals_sample_weight():
    X, y = _sign_task(80)
    a = _fit_quiet(_small(max_epochs=3, class_weight={0: 1.0, 1: 3.0}), X, y)
    b = _fit_quiet(_small(max_epochs=3), X, y, sample_weight=np.where(y == 1, 3.0, 1.0))
    _assert_same_weights(a, b)


def test_class_weight_balanced_helps_the_minority():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 5, 1)).astype(np.float32)
    score = X[:, :, 0].sum(axis=1) + rng.normal(scale=1.5, size=400)
    y = (score > 3.0).astype(int)  # about 10% positives, noisy
    plain = _fit_quiet(_small(max_epochs=15), X, y)
    balanced = _fit_quiet(_small(max_epochs=15, class_weight="balanced"), X, y)
    recall = [np.mean(m.predict(X)[y == 1] == 1) for m in (plain, balanced)]
    assert recall[1] > recall[0] + 0.2


# ------------------------------------------------------------------ reproducibility


def test_same_seed_same_model_bit_for_bit():
    X, y = _ragged_task(100)
    a = _fit_quiet(_small(max_epochs=3, n_jobs=2, dropout=0.1, num_layers=2), X, y)
    b = _fit_quiet(_small(max_epochs=3, n_jobs=2, dropout=0.1, num_layers=2), X, y)
    _assert_same_weights(a, b)
    assert a.loss_curve_ == b.loss_curve_
    c = _fit_quiet(_small(max_epochs=3, n_jobs=2, random_state=1), X, y)
    assert not np.array_equal(_weights(a)[0], _weights(c)[0])


def test_thread_count_changes_only_rounding():
    X, y = _sign_task(64, T=20)
    clf = _fit_quiet(_small(max_epochs=2), X, y)
    p1 = clf.predict_proba(X)
    clf.set_params(n_jobs=2)
    np.testing.assert_allclose(clf.predict_proba(X), p1, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ training control


def test_early_stopping_restores_best_weights():
    X, y = _sign_task(300, seed=3)
    clf = _small(early_stopping=True, n_iter_no_change=3, max_epochs=200,
                 learning_rate=0.05, validation_fraction=0.2)
    seen = []

    def spy(Xs, target, weight, out=None):
        score = LSTMClassifier._validation_score(clf, Xs, target, weight, out)
        seen.append((score, clf.network_.get_weights(), np.bincount(target)))
        return score

    clf._validation_score = spy
    clf.fit(X, y)
    scores = clf.validation_scores_
    assert clf.n_iter_ < 200 and len(scores) == clf.n_iter_ == len(clf.loss_curve_)
    assert [s for s, _, _ in seen] == scores
    best = int(np.argmax(scores))
    assert clf.best_validation_score_ == scores[best]
    assert len(scores) - 1 - best == clf.n_iter_no_change + 1  # stopped after the plateau
    for got, want in zip(clf.network_.get_weights(), seen[best][1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert not all(np.array_equal(a, b)
                   for a, b in zip(seen[-1][1], seen[best][1], strict=True))
    # stratified: the validation set has the class balance of y
    counts = seen[0][2]
    assert counts.sum() == 60
    assert abs(counts[1] / 60 - y.mean()) < 0.02


def test_convergence_warning_only_at_the_epoch_limit():
    X, y = _sign_task(60)
    with pytest.warns(ConvergenceWarning, match="Maximum epochs"):
        _small(max_epochs=2).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = _small(max_epochs=100, tol=10.0, n_iter_no_change=2).fit(X, y)
    # the first epoch sets the best loss, which never improves by tol: the run stops
    # when more than n_iter_no_change epochs have not improved, as MLPClassifier
    assert clf.n_iter_ == 4


def test_keyboard_interrupt_leaves_a_usable_model(monkeypatch):
    X, y = _sign_task(64)
    calls = {"n": 0}
    real_step = Adam.step

    def step(self, params, grads):
        calls["n"] += 1
        if calls["n"] == 10:  # during the third epoch (4 batches per epoch)
            raise KeyboardInterrupt
        real_step(self, params, grads)

    monkeypatch.setattr(Adam, "step", step)
    clf = _small(max_epochs=50)
    with pytest.raises(KeyboardInterrupt):  # the interrupt reaches the caller
        clf.fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.t_ == 9 * 16
    proba = clf.predict_proba(X)
    assert np.all(np.isfinite(proba)) and proba.shape == (64, 2)


def test_non_finite_loss_restores_last_good_weights():
    X, y = _sign_task(64)
    # the reference's loss replaced too, by itself: both fits take the same (Python) step
    reference = _small(LSTMRegressor, max_epochs=2)
    reference._loss = squared_error
    reference = _fit_quiet(reference, X, y.astype(float))

    reg = _small(LSTMRegressor, max_epochs=6)
    calls = {"n": 0}

    def loss(out, target, weight, lengths):
        calls["n"] += 1
        value, grad = squared_error(out, target, weight, lengths)
        return (np.nan if calls["n"] == 10 else value), grad

    reg._loss = loss
    with pytest.warns(ConvergenceWarning, match="non-finite|nan") as record:
        reg.fit(X, y.astype(float))
    assert "epoch 3" in str(record[0].message) and "restored" in str(record[0].message)
    assert reg.n_iter_ == 2
    _assert_same_weights(reg, reference)  # the weights at the end of epoch 2
    # and the optimizer's moments and step count, as they were then
    assert reg._optimizer.t == reference._optimizer.t > 0
    for got, ref in zip(reg._optimizer.state_arrays(), reference._optimizer.state_arrays(),
                        strict=True):
        np.testing.assert_array_equal(got, ref)
    assert np.all(np.isfinite(reg.predict(X)))


def test_diverging_training_stops_with_a_warning():
    X, y = _sign_task(64)
    reg = _small(LSTMRegressor, optimizer="sgd", learning_rate=1e12, clip_norm=None,
                 max_epochs=50, momentum=0.0)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        reg.fit(X, y * 1e3)
    assert reg.n_iter_ < 50
    assert np.all(np.isfinite(reg.predict(X)))
    assert all(np.isfinite(reg.loss_curve_))


def test_clip_norm_limits_the_update():
    X, y = _sign_task(32)

    def one_step(learning_rate, clip_norm):
        return _fit_quiet(_small(optimizer="sgd", learning_rate=learning_rate, momentum=0.0,
                                 max_epochs=1, batch_size=32, clip_norm=clip_norm), X, y)

    initial = one_step(1e-30, None)  # the initial weights, up to float rounding

    def moved(est):
        return np.sqrt(sum(np.sum((a.astype(np.float64) - b) ** 2)
                           for a, b in zip(_weights(est), _weights(initial), strict=True)))

    # one SGD step of learning rate 1 moves the weights by the (clipped) gradient norm
    assert 0.9e-3 < moved(one_step(1.0, 1e-3)) < 1.1e-3
    assert moved(one_step(1.0, None)) > 1e-2


def test_warm_start_continues():
    X, y = _sign_task(100)
    clf = _fit_quiet(_small(max_epochs=3, warm_start=True), X, y)
    first = list(clf.loss_curve_)
    _fit_quiet(clf, X, y)
    assert clf.n_iter_ == 6 and clf.loss_curve_[:3] == first
    assert clf.loss_curve_[3] < first[0]  # not reinitialized
    clf.set_params(warm_start=False)
    _fit_quiet(clf, X, y)
    assert clf.n_iter_ == 3 and clf.loss_curve_ == first  # a fresh, identical fit
    clf.set_params(warm_start=True, hidden_size=4)
    with pytest.raises(ValueError, match="hidden_size"):
        clf.fit(X, y)


def test_partial_fit_classifier():
    X, y = _sign_task(200)
    labels = np.array(["a", "b", "c"])
    clf = _small()
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, labels[y])
    for i in range(10):
        clf.partial_fit(X[:100], labels[y[:100]], classes=labels if i == 0 else None)
    assert clf.n_iter_ == 10 and len(clf.loss_curve_) == 10
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert list(clf.classes_) == ["a", "b", "c"]
    assert clf.predict_proba(X).shape == (200, 3)  # "c" never seen, still a column
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:5], np.array(["a", "b", "z", "a", "a"]))
    with pytest.raises(ValueError, match="early_stopping"):
        clone(clf).set_params(early_stopping=True).partial_fit(X, labels[y], classes=labels)


def test_partial_fit_regressor_continues():
    X, y = _sign_task(100)
    reg = _small(LSTMRegressor)
    reg.partial_fit(X, y.astype(float))
    w1 = _weights(reg)
    reg.partial_fit(X, y.astype(float))
    assert reg.n_iter_ == 2 and reg.t_ == 200
    assert not np.array_equal(_weights(reg)[0], w1[0])


# ------------------------------------------------------------------ progress


def test_silent_by_default(capsys):
    X, y = _sign_task(40)
    _fit_quiet(_small(max_epochs=2), X, y)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_progress_on_stderr(capsys):
    X, y = _sign_task(40)
    _fit_quiet(_small(max_epochs=2, verbose=1, early_stopping=True, validation_fraction=0.25),
               X, y)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1/2 [") and lines[1].startswith("Epoch 2/2 [")
    assert " loss " in lines[1] and " val " in lines[1] and "seq/s" in lines[1]


def test_verbose_2_one_line_per_epoch(capsys):
    X, y = _sign_task(40)
    _fit_quiet(_small(max_epochs=3, verbose=2), X, y)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all("seq/s" in line for line in lines)


def test_progress_bar_redraws_in_place_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    p = Progress(1, 5, stream=out, min_interval=0.0)
    p.start_epoch(1, 100)
    p.update(50, 0.7)
    p.end_epoch(0.6, 0.9)
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[############............] 50/100 loss 0.7000" in text
    assert "val 0.9000" in text


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("Est", [LSTMClassifier, LSTMRegressor])
def test_unfitted(Est):
    with pytest.raises(NotFittedError):
        Est().predict(np.zeros((2, 3, 1)))


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.full((4, 3, 2), np.nan), [0, 1, 0, 1], "NaN"),
        (np.full((4, 3, 2), np.inf), [0, 1, 0, 1], "infinity"),
        (np.zeros((0, 3, 2)), [], "0 sample"),
        (np.zeros((4, 3, 2)), [0, 1, 0], "inconsistent numbers of samples"),
        (np.zeros(4), [0, 1, 0, 1], "1D array"),
        (np.zeros((4, 3, 2)), [1, 1, 1, 1], "greater than one"),
        (np.zeros((4, 3, 2)), [0.5, 1.5, 2.5, 0.1], "Unknown label type"),
        (np.zeros((4, 3, 2)), [0, 1, np.nan, 1], "NaN"),
    ],
)
def test_classifier_input_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        _small(max_epochs=1).fit(X, np.asarray(y))


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.zeros((4, 3, 2)), [0.0, 1.0, np.inf, 1.0], "infinity"),
        (np.zeros((4, 3, 2)), np.zeros((4, 2, 2)), "sequence_output=True"),
        (np.zeros((4, 3, 2)), [1.0, 2.0], "inconsistent numbers of samples"),
    ],
)
def test_regressor_input_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        _small(LSTMRegressor, max_epochs=1).fit(X, np.asarray(y))


def test_wrong_feature_count_at_predict():
    X, y = _sign_task(20, F=3)
    clf = _fit_quiet(_small(max_epochs=1), X, y)
    assert clf.n_features_in_ == 3
    with pytest.raises(ValueError, match="X has 2 features, but LSTMClassifier is expecting 3"):
        clf.predict(X[:, :, :2])
    with pytest.raises(ValueError, match="2D array of univariate series"):
        clf.predict(X[:, :, 0])
    table = _fit_quiet(_small(max_epochs=1), X[:, :, 0], y)  # fitted on a 2D table
    assert table.n_features_in_ == 6  # the columns of the table: its time steps
    with pytest.raises(ValueError, match="X has 5 features, but LSTMClassifier is expecting 6"):
        table.predict(np.zeros((2, 5)))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(hidden_size=0), "hidden_size"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(dropout=1.0), "dropout"),
        (dict(clip_norm=0), "clip_norm"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(n_jobs=0), "n_jobs"),
        (dict(dtype="float16"), "dtype"),
        (dict(class_weight="auto"), "class_weight"),
    ],
)
def test_invalid_parameters(params, match):
    X, y = _sign_task(10)
    with pytest.raises(ValueError, match=match):
        LSTMClassifier(**params).fit(X, y)


def test_negative_and_misshapen_sample_weight():
    X, y = _sign_task(10)
    with pytest.raises(ValueError, match="Negative"):
        _small(max_epochs=1).fit(X, y, sample_weight=-np.ones(10))
    with pytest.raises(ValueError, match="expected"):
        _small(max_epochs=1).fit(X, y, sample_weight=np.ones(9))


# ------------------------------------------------------------------ ecosystem


def test_pickle_round_trip_identical_predictions():
    X, y = _ragged_task(60)
    clf = _fit_quiet(_small(max_epochs=3, n_jobs=2), X, y)
    clone_ = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone_.predict_proba(X), clf.predict_proba(X))
    # and it keeps training from where it was
    clone_.set_params(warm_start=True)
    _fit_quiet(clone_, X, y)
    assert clone_.n_iter_ == 6


def test_float64_model():
    X, y = _sign_task(50)
    reg = _fit_quiet(_small(LSTMRegressor, max_epochs=2, dtype="float64"), X, y.astype(float))
    assert all(p.dtype == np.float64 for p in reg.network_.parameters())
    assert reg.predict(X).dtype == np.float64


def test_pipeline_grid_search_and_clone():
    X, y = _sign_task(120)
    flat = FunctionTransformer(lambda Z: Z)  # stands for any preprocessing step
    pipe = make_pipeline(flat, _small(max_epochs=5))
    search = GridSearchCV(pipe, {"lstmclassifier__hidden_size": [4, 8]}, cv=2, n_jobs=2)
    _fit_quiet(search, X, y)
    assert search.best_params_["lstmclassifier__hidden_size"] in (4, 8)
    assert search.score(X, y) > 0.7
    est = search.best_estimator_[-1]
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "network_")


def test_public_api():
    assert {"LSTM", "LSTMClassifier", "LSTMRegressor"} <= set(fastlstm.__all__)
    params = LSTMRegressor().get_params()
    for name, default in dict(
        hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0, batch_size=32,
        max_epochs=100, learning_rate=1e-3, optimizer="adam", weight_decay=0.0,
        clip_norm=5.0, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
        tol=1e-4, warm_start=False, shuffle=True, random_state=None, n_jobs=None,
        verbose=0, sequence_output=False,
    ).items():
        assert params[name] == default, name
    assert LSTMClassifier().get_params()["class_weight"] is None
    with pytest.raises(TypeError):
        LSTMClassifier(64)  # keyword-only


# ------------------------------------------------------------------ internals


def test_softmax_cross_entropy_gradient():
    rng = np.random.RandomState(0)
    logits, y, w = rng.normal(size=(5, 3)), np.array([0, 2, 1, 1, 0]), rng.uniform(size=5)
    loss, grad = softmax_cross_entropy(logits, y, w)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.sum(w * np.log(p[np.arange(5), y])) / w.sum())
    eps = 1e-6
    for i, j in [(0, 0), (2, 1), (4, 2)]:
        d = np.zeros_like(logits)
        d[i, j] = eps
        num = (softmax_cross_entropy(logits + d, y, w)[0]
               - softmax_cross_entropy(logits - d, y, w)[0]) / (2 * eps)
        assert grad[i, j] == pytest.approx(num, rel=1e-6)


@pytest.mark.parametrize("bidirectional, sequence_output, layers",
                         [(False, False, 1), (True, False, 2), (True, True, 1)])
def test_network_gradient_matches_finite_differences(bidirectional, sequence_output, layers):
    rng = np.random.RandomState(0)
    net = SequenceNet(2, 2, hidden_size=3, num_layers=layers, bidirectional=bidirectional,
                      dtype="float64", sequence_output=sequence_output, random_state=1,
                      n_jobs=1)
    x = rng.normal(size=(4, 5, 2))
    lengths = np.array([5, 2, 4, 1])
    t = rng.normal(size=(4, 5, 2) if sequence_output else (4, 2))
    w = rng.uniform(0.5, 1.5, size=4)

    def loss():
        return squared_error(net.forward(x, lengths), t, w, lengths)[0]

    out = net.forward(x, lengths, training=True)
    grads = net.backward(squared_error(out, t, w, lengths)[1])
    for p, g in zip(net.parameters(), grads, strict=True):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for k in rng.choice(flat.size, size=min(flat.size, 6), replace=False):
            old = flat[k]
            flat[k] = old + 1e-6
            up = loss()
            flat[k] = old - 1e-6
            down = loss()
            flat[k] = old
            assert gflat[k] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9)


def test_rnn_cell_trains_and_is_an_rnn():
    """cell="rnn" builds fastlstm.RNN underneath and still learns a short-memory task."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(300, 6, 2)).astype(np.float32)
    y = X[:, -1, 0] - 0.5 * X[:, -2, 1]  # depends on the last two steps only
    reg = fastlstm.LSTMRegressor(cell="rnn", hidden_size=16, max_epochs=40, learning_rate=0.01,
                                 random_state=0, n_jobs=1).fit(X, y)
    assert isinstance(reg.network_.layer, fastlstm.RNN)
    assert "weight_hh_l0" in reg.network_.layer.state_dict()
    assert reg.score(X, y) > 0.9
    lstm = fastlstm.LSTMRegressor(hidden_size=16, max_epochs=1, random_state=0).fit(X, y)
    assert isinstance(lstm.network_.layer, fastlstm.LSTM)


def test_unknown_cell_is_rejected():
    X = np.zeros((10, 4, 1))
    with pytest.raises(ValueError, match="cell"):
        fastlstm.LSTMClassifier(cell="transformer").fit(X, np.arange(10) % 2)


def test_cell_is_part_of_the_architecture_for_warm_start():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 5, 2)).astype(np.float32)
    y = X[:, -1, 0]
    reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=2, warm_start=True, random_state=0)
    reg.fit(X, y)
    reg.set_params(cell="rnn")
    with pytest.raises(ValueError, match="cell"):
        reg.fit(X, y)
