"""Held-out validation during training: the temporal split and the per-epoch monitor."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastlstm.train.network import predict_outputs
from fastlstm.train.sequences import Sequences

__all__ = ["ValidationMonitor", "temporal_split"]


def temporal_split(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the last ``fraction`` of ``n`` samples, in order (no shuffling).

    For sequences cut from one series by a sliding window, a random split
    puts windows that overlap training windows into the validation set, so
    the validation score flatters the model; holding out the latest windows
    does not.  Sizes round as ``train_test_split`` does (validation up).

    Examples
    --------
    >>> from fastlstm.estimators.validation import temporal_split
    >>> train, val = temporal_split(10, 0.25)
    >>> train.tolist(), val.tolist()
    ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    """
    n_val = math.ceil(fraction * n)
    idx = np.arange(n)
    return idx[: n - n_val], idx[n - n_val:]


class ValidationMonitor:
    """Scores the model on held-out data after each epoch and keeps the losses.

    Calling the monitor runs the network over the validation sequences once,
    appends the validation loss (the training loss function, on the same
    scale) to ``losses``, and returns the value early stopping watches
    (higher is better): the estimator's score (accuracy or R²), or with
    ``scoring="loss"`` the negative loss.

    Parameters
    ----------
    estimator : LSTMClassifier or LSTMRegressor
        Being fitted; gives the network, the loss and the score.
    X : Sequences
        Validated validation sequences.
    target : ndarray or Sequences
        Their targets, prepared as the training targets are.
    weight : ndarray of shape (n_samples,)
        Their weights.
    scoring : {None, "loss"}
        What to return.
    """

    def __init__(self, estimator: Any, X: Sequences, target: Any, weight: np.ndarray,
                 scoring: str | None) -> None:
        self.estimator = estimator
        self.X, self.target, self.weight = X, target, weight
        self.scoring = scoring
        self.losses: list[float] = []

    def __call__(self) -> float:
        est = self.estimator
        out = predict_outputs(est.network_, self.X, est.batch_size)
        if isinstance(out, Sequences):  # per step: each valid step is one sample
            w = np.repeat(self.weight, self.X.lengths)
            loss, _ = est._loss(out.steps(), self.target.steps(), w, None)
        else:
            loss, _ = est._loss(out.astype(est.network_.dtype), self.target, self.weight, None)
        self.losses.append(float(loss))
        if self.scoring == "loss":
            return -float(loss)
        return est._validation_score(self.X, self.target, self.weight, out)
