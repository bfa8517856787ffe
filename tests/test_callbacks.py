"""Callbacks: hooks, stopping, schedules, checkpoints, clone."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.callbacks import (
    Callback,
    EarlyStopping,
    LRScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    load_checkpoint,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=48, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5, 2)).astype(np.float32)
    return X, X[:, :, 0].sum(axis=1)


def _small(cls=LSTMRegressor, **kw):
    params = dict(hidden_size=6, max_epochs=4, batch_size=16, learning_rate=0.02,
                  random_state=0, n_jobs=1)
    params.update(kw)
    return cls(**params)


class Recorder(Callback):
    def on_train_begin(self, ctx):
        self.events = ["train_begin"]

    def on_epoch_begin(self, ctx, epoch):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, ctx, batch, loss):
        self.events.append(f"batch_end {batch}")

    def on_epoch_end(self, ctx, epoch, logs):
        self.events.append(f"epoch_end {epoch} {logs['epoch']}")

    def on_train_end(self, ctx):
        self.events.append("train_end")


def test_hooks_run_in_order_and_do_not_change_training():
    X, y = _data()
    rec = Recorder()
    with_cb = _small(max_epochs=2, callbacks=[rec]).fit(X, y)
    plain = _small(max_epochs=2).fit(X, y)
    per_epoch = ["batch_end 0", "batch_end 1", "batch_end 2"]
    assert rec.events == (["train_begin", "epoch_begin 1"] + per_epoch + ["epoch_end 1 1",
                          "epoch_begin 2"] + per_epoch + ["epoch_end 2 2", "train_end"])
    np.testing.assert_array_equal(with_cb.predict(X), plain.predict(X))


def test_a_callback_can_stop_training():
    class StopAfter(Callback):
        def on_epoch_end(self, ctx, epoch, logs):
            if epoch == 3:
                ctx.stop("enough")

    X, y = _data()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Stochastic Optimizer")  # not max_epochs
        reg = _small(max_epochs=20, callbacks=[StopAfter()]).fit(X, y)
    assert reg.n_iter_ == 3 and len(reg.history_) == 3


def test_step_and_cosine_schedules_set_the_rate_of_each_epoch():
    X, y = _data()
    reg = _small(max_epochs=5, callbacks=[LRScheduler("step", step_size=2, gamma=0.5)])
    reg.fit(X, y)
    assert reg.history_["learning_rate"] == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.005])
    reg = _small(max_epochs=5, callbacks=[LRScheduler("cosine", eta_min=0.0)]).fit(X, y)
    want = [0.01 * (1 + np.cos(np.pi * e / 5)) for e in range(5)]
    assert reg.history_["learning_rate"] == pytest.approx(want)


def test_reduce_on_plateau_lowers_the_rate_at_the_right_epoch():
    class Plateau(ReduceLROnPlateau):  # sees losses 5, 4, 4, 4, ...: flat from epoch 2
        def on_epoch_end(self, ctx, epoch, logs):
            super().on_epoch_end(ctx, epoch, dict(logs, loss=5.0 if epoch == 1 else 4.0))

    X, y = _data()
    reg = _small(max_epochs=7, callbacks=[Plateau(factor=0.5, patience=2)]).fit(X, y)
    # epochs 3, 4, 5 do not improve on epoch 2: after the third (patience + 1) the rate
    # halves, so epochs 6 and 7 run at 0.01
    assert reg.history_["learning_rate"] == pytest.approx([0.02] * 5 + [0.01] * 2)


def test_early_stopping_callback_on_validation_loss_restores_the_best_epoch():
    X, y = _data(120)
    stop = EarlyStopping(monitor="validation_loss", patience=2)
    reg = _small(max_epochs=60, learning_rate=0.08, early_stopping=True,
                 n_iter_no_change=1000, callbacks=[stop])
    reg.fit(X[:90], y[:90], X_val=X[90:], y_val=y[90:])
    losses = reg.validation_losses_
    best = int(np.argmin(losses))
    assert reg.n_iter_ == best + 4  # patience 2: stops on the third epoch without gain
    pred = (reg.predict(X[90:]) - reg._y_mean[0]) / reg._y_scale[0]
    z = (y[90:] - reg._y_mean[0]) / reg._y_scale[0]
    assert np.mean((pred - z) ** 2) == pytest.approx(losses[best], rel=1e-4)


def test_checkpoint_reloads_to_the_best_epochs_predictions(tmp_path):
    X, y = _data(120)
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, monitor="validation_loss")
    reg = _small(max_epochs=12, learning_rate=0.08, early_stopping=True, n_iter_no_change=100,
                 callbacks=[ckpt])
    reg.fit(X[:90], y[:90], X_val=X[90:], y_val=y[90:])
    best = int(np.argmin(reg.validation_losses_))
    assert ckpt.best_epoch_ == best + 1
    fresh = _small(max_epochs=1).fit(X[:90], y[:90])  # same architecture, other weights
    fresh._y_mean, fresh._y_scale = reg._y_mean, reg._y_scale
    load_checkpoint(fresh, path)
    np.testing.assert_array_equal(fresh.predict(X), reg.predict(X))  # reg: best restored
    other = _small(hidden_size=5, max_epochs=1).fit(X, y)
    before = other.predict(X)
    with pytest.raises(ValueError, match="checkpoint"):
        load_checkpoint(other, path)
    np.testing.assert_array_equal(other.predict(X), before)


class WeightsPerEpoch(Callback):
    def on_train_begin(self, ctx):
        self.weights = []

    def on_epoch_end(self, ctx, epoch, logs):
        self.weights.append(ctx.get_weights())


def test_checkpoint_file_loads_with_fastlstm_load_to_the_best_epochs_model(tmp_path):
    import fastlstm

    X, y = _data(120)
    path = tmp_path / "best.fastlstm"
    ckpt, rec = ModelCheckpoint(path, monitor="loss"), WeightsPerEpoch()
    reg = _small(max_epochs=10, learning_rate=0.05, n_iter_no_change=100,
                 callbacks=[ckpt, rec]).fit(X, y)
    best = int(np.argmin(reg.loss_curve_)) + 1
    assert ckpt.best_epoch_ == best < reg.n_iter_  # the last epoch was not the best
    loaded = fastlstm.load(path)  # the safe format: a whole model, no pickle
    assert loaded.n_iter_ == best and loaded.loss_curve_ == reg.loss_curve_[:best]
    assert loaded.callbacks is None
    reg.network_.set_weights(rec.weights[best - 1])
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    loaded.partial_fit(X, y)  # it can go on training (the optimizer state is in the file)
    assert loaded.n_iter_ == best + 1


def test_weights_only_checkpoint_is_a_npz_of_named_weights(tmp_path):
    X, y = _data()
    path = tmp_path / "w.npz"
    reg = _small(callbacks=[ModelCheckpoint(path, monitor="loss", weights_only=True)])
    reg.fit(X, y)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(reg.network_.parameter_names())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]  # no temporary left
    with pytest.raises(TypeError, match="weights_only"):
        _small(callbacks=[ModelCheckpoint(path, weights_only="no")]).fit(X, y)


def test_a_failing_callback_fails_the_fit_and_changes_nothing():
    class Broken(Callback):
        def on_epoch_end(self, ctx, epoch, logs):
            raise RuntimeError("callback bug")

    X, y = _data()
    reg = _small().fit(X, y)
    before = reg.predict(X)
    with pytest.raises(RuntimeError, match="callback bug"):
        reg.set_params(callbacks=[Broken()]).fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), before)


def test_monitoring_what_is_not_recorded_is_a_clear_error():
    X, y = _data()
    with pytest.raises(ValueError, match="validation values need early_stopping"):
        _small(callbacks=[EarlyStopping()]).fit(X, y)
    with pytest.raises(ValueError, match="monitor must be one of"):
        _small(callbacks=[EarlyStopping(monitor="accuracy")]).fit(X, y)
    with pytest.raises(ValueError, match="'callbacks' parameter"):
        _small(callbacks=[lambda: None]).fit(X, y)


def test_clone_and_grid_search_keep_working():
    X, y = _data()
    clf = _small(LSTMClassifier, callbacks=[LRScheduler("cosine"), Recorder()])
    twin = clone(clf)
    assert twin.callbacks is not clf.callbacks
    assert isinstance(twin.get_params()["callbacks"][0], LRScheduler)
    search = GridSearchCV(clf, {"hidden_size": [4, 6]}, cv=2).fit(X, y > 0)
    assert search.best_estimator_.history_["learning_rate"][0] == pytest.approx(0.02)
