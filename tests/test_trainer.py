"""The Trainer: train step, epoch and events, with the estimators' behaviour
built from hooks rather than branches of the loop."""

import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastlstm.train.network import SequenceNet, TrainState, squared_error
from fastlstm.train.optim import make_optimizer
from fastlstm.train.progress import Progress
from fastlstm.train.trainer import (
    HistoryRecorder,
    Hook,
    NonFiniteRollback,
    PlateauCheck,
    PlateauStopping,
    ProgressReporter,
    Trainer,
    UserCallbacks,
    standard_hooks,
)


class Recorder(Hook):
    def __init__(self, stop_at=None):
        self.events, self.stop_at = [], stop_at

    def train_begin(self, trainer):
        self.events.append("train_begin")

    def epoch_begin(self, trainer, epoch):
        self.events.append(f"epoch_begin {epoch}")

    def batch_end(self, trainer, batch, loss):
        self.events.append(f"batch_end {batch} {trainer.done}")

    def epoch_failed(self, trainer, epoch, batch, n_batches, what):
        self.events.append(f"epoch_failed {epoch} {batch} {what}")

    def epoch_end(self, trainer, epoch, logs):
        self.events.append(f"epoch_end {epoch}")
        if epoch == self.stop_at:
            assert trainer.stop("callback") and not trainer.stop("converged")

    def closed(self, trainer):
        self.events.append("closed")

    def train_end(self, trainer):
        self.events.append("train_end")


def _trainer(hooks, loss_fn=squared_error, validate=None):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 5, 2)).astype(np.float32)
    y = X[:, :, :1].sum(axis=1)
    net = SequenceNet(2, 1, hidden_size=4, random_state=0)
    opt = make_optimizer("adam", net.parameters(), learning_rate=0.01, weight_decay=0.0,
                         momentum=0.9)

    def get_batch(idx):
        return X[idx], None, y[idx], np.ones(len(idx))

    trainer = Trainer(net, opt, TrainState(), get_batch=get_batch, loss_fn=loss_fn,
                      batch_size=16, shuffle=True, rng=np.random.RandomState(1),
                      clip_norm=None, validate=validate, hooks=hooks)
    return trainer, np.full(40, 5)


def test_events_in_order_and_the_loop_itself_records_no_curves():
    rec = Recorder()
    trainer, lengths = _trainer([rec])
    assert trainer.fit_loop(lengths, 2) == "max_epochs"
    batches = [e for e in rec.events if e.startswith("batch_end")][:3]
    assert [int(e.split()[-1]) for e in batches] == sorted({int(e.split()[-1]) for e in batches})
    assert batches[-1].endswith(" 40")  # the trainer counts the sequences of the epoch
    assert rec.events == (["train_begin", "epoch_begin 1"] + batches + ["epoch_end 1",
                          "epoch_begin 2"] + rec.events[7:10] + ["epoch_end 2", "closed",
                                                                 "train_end"])
    assert trainer.state.n_iter == 2 and trainer.state.t == 80
    assert trainer.state.loss_curve == [] and trainer.state.history == []  # hooks' work


def test_the_first_stop_request_wins_and_ends_the_loop_after_the_epoch():
    rec = Recorder(stop_at=1)
    trainer, lengths = _trainer([rec, HistoryRecorder()])
    assert trainer.fit_loop(lengths, 5) == "callback"
    assert trainer.state.n_iter == 1 and len(trainer.state.history) == 1


def test_a_non_finite_step_changes_nothing_and_rollback_is_a_hook():
    def nan_loss(out, target, weight, lengths):
        return math.nan, np.zeros_like(out)

    rec = Recorder()
    trainer, lengths = _trainer([rec], loss_fn=nan_loss)
    before = trainer.net.get_weights()
    loss, what = trainer.train_step(np.arange(8))
    assert math.isnan(loss) and what == "the loss is nan"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no hook that warns: no warning
        assert trainer.fit_loop(lengths, 3) == "non_finite"
    assert "epoch_failed 1 0 the loss is nan" in rec.events and "train_end" in rec.events
    assert all(np.array_equal(a, b) for a, b in zip(trainer.net.get_weights(), before,
                                                    strict=True))
    trainer, lengths = _trainer([NonFiniteRollback()], loss_fn=nan_loss)
    with pytest.warns(ConvergenceWarning, match="epoch 1, batch 1 of 3"):
        trainer.fit_loop(lengths, 3)


def test_standard_hooks_order():
    hooks = standard_hooks(Progress(0, None), tol=1e-4, n_iter_no_change=3,
                           stop_on_plateau=True, events=object())
    assert [type(h) for h in hooks] == [PlateauStopping, HistoryRecorder, ProgressReporter,
                                       NonFiniteRollback, UserCallbacks, PlateauCheck]
    hooks = standard_hooks(Progress(0, None), tol=1e-4, n_iter_no_change=3,
                           stop_on_plateau=True)
    assert UserCallbacks not in [type(h) for h in hooks]


def test_plateau_stops_the_standard_loop_and_reports_once():
    out = []

    class Collect(Progress):
        def message(self, text):
            out.append(text)

    trainer, lengths = _trainer(standard_hooks(Collect(0, None), tol=10.0, n_iter_no_change=1,
                                               stop_on_plateau=True))
    assert trainer.fit_loop(lengths, 10) == "converged"
    # epoch 1 sets the best loss; epochs 2 and 3 do not beat it by tol: 2 > n_iter_no_change
    assert trainer.state.n_iter == 3 and len(trainer.state.loss_curve) == 3
    assert len(out) == 1 and "did not improve more than tol=10" in out[0]


@pytest.mark.parametrize("early_stopping", [True, False])
def test_a_validation_stops_the_loop_only_with_early_stopping(early_stopping):
    scores = iter([0.5, 0.9, 0.1, 0.1, 0.1, 0.1])  # best at epoch 2, then no better
    hooks = standard_hooks(Progress(0, None), tol=0.0, n_iter_no_change=1,
                           stop_on_plateau=True, early_stopping=early_stopping)
    trainer, lengths = _trainer(hooks, validate=lambda: next(scores))
    weights = []
    trainer.hooks.append(type("Keep", (Hook,), {"epoch_end": lambda self, t, e, logs:
                                                weights.append(t.net.get_weights())})())
    reason = trainer.fit_loop(lengths, 6)
    state = trainer.state
    assert state.validation_scores == [0.5, 0.9, 0.1, 0.1, 0.1, 0.1][:state.n_iter]
    assert state.best_validation_score == 0.9
    final = trainer.net.get_weights()
    if early_stopping:  # two epochs without improvement > n_iter_no_change: stop, best back
        assert (reason, state.n_iter) == ("converged", 4)
        expected = weights[1]
    else:  # the training loss decides (it improves here), and the last weights stay
        assert (reason, state.n_iter) == ("max_epochs", 6)
        assert state.best_weights is None
        expected = weights[-1]
    assert all(np.array_equal(a, b) for a, b in zip(final, expected, strict=True))
