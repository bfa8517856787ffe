"""The callbacks of the training loop (the public module is :mod:`fastlstm.callbacks`)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastlstm.runtime import hooks

__all__ = [
    "Callback",
    "EarlyStopping",
    "LRScheduler",
    "ModelCheckpoint",
    "ProgressBar",
    "ReduceLROnPlateau",
    "TrainingContext",
]

_MONITORS = {"loss": -1.0, "validation_loss": -1.0, "validation_score": 1.0}


class TrainingContext:
    """What callbacks see of a running fit.

    Attributes
    ----------
    estimator : LSTMClassifier or LSTMRegressor
        The estimator being fitted.
    history : list of dict
        The records of the epochs so far (see ``history_``).
    stop_reason : str or None
        Set by :meth:`stop`.
    total_epochs : int or None
        The epoch count this fit runs to at most (None for ``partial_fit``).
    n_samples : int
        Training sequences per epoch.
    samples_done : int
        Training sequences of the current epoch seen so far.

    Examples
    --------
    >>> from fastlstm.callbacks import TrainingContext
    >>> TrainingContext(None, None, None, []).stop_reason is None
    True
    """

    def __init__(self, estimator: Any, network: Any, optimizer: Any,
                 history: list[dict]) -> None:
        self.estimator = estimator
        self._network = network
        self._optimizer = optimizer
        self.history = history
        self.stop_reason: str | None = None
        self.total_epochs: int | None = None
        self.n_samples = 0
        self.samples_done = 0

    @property
    def learning_rate(self) -> float:
        """The optimizer's current step size (settable)."""
        return self._optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"learning_rate must be a positive float, got {value!r}")
        self._optimizer.learning_rate = float(value)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all parameters (the layer's, then the readout's)."""
        return self._network.get_weights()

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy ``weights`` (as from :meth:`get_weights`) into the model."""
        self._network.set_weights(weights)

    def parameter_names(self) -> list[str]:
        """Names of the parameters, in the order of :meth:`get_weights`."""
        return self._network.parameter_names()

    def save(self, path: str | os.PathLike) -> None:
        """Save the model as it is now with :func:`fastlstm.save` (without its callbacks)."""
        est = self.estimator
        snapshot = object.__new__(type(est))  # the fit goes on with est untouched
        snapshot.__dict__.update(est.__dict__)
        snapshot.callbacks = None
        snapshot._publish_state()  # fitted attributes as of this epoch
        hooks.call("save", snapshot, path)  # fastlstm.save, provided by fastlstm.io

    def stop(self, reason: str = "stopped by a callback") -> None:
        """Stop training after the current epoch."""
        self.stop_reason = reason


class Callback:
    """Base class: override the hooks you need; all do nothing by default.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import LSTMRegressor
    >>> from fastlstm.callbacks import Callback
    >>> class StopAtLoss(Callback):
    ...     def on_epoch_end(self, ctx, epoch, logs):
    ...         if logs["loss"] < 10.0:
    ...             ctx.stop("loss below 10")
    >>> X = np.random.default_rng(0).uniform(size=(32, 4, 1))
    >>> reg = LSTMRegressor(hidden_size=4, max_epochs=50, callbacks=[StopAtLoss()],
    ...                     random_state=0).fit(X, X[:, -1, 0])
    >>> reg.n_iter_
    1
    """

    #: True for a callback whose ``on_batch_end`` only displays: the fit may
    #: then take many steps in one compiled call and call it for each
    #: afterwards, in order, within about a tenth of a second.  False (the
    #: default): ``on_batch_end`` runs right after its step and sees the
    #: model as that step left it.
    display_only: bool = False

    def on_train_begin(self, ctx: TrainingContext) -> None:
        """Before the first epoch of a ``fit`` or ``partial_fit`` call."""

    def on_epoch_begin(self, ctx: TrainingContext, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based, counted across warm starts)."""

    def on_batch_end(self, ctx: TrainingContext, batch: int, loss: float) -> None:
        """After the optimizer step of mini-batch ``batch`` (0-based) with its ``loss``."""

    def on_epoch_end(self, ctx: TrainingContext, epoch: int, logs: dict) -> None:
        """After the epoch; ``logs`` is its ``history_`` record."""

    def on_train_end(self, ctx: TrainingContext) -> None:
        """After the last epoch (also when a callback stopped the training)."""


def _check_monitor(monitor: str) -> float:
    if monitor not in _MONITORS:
        raise ValueError(f"monitor must be one of {sorted(_MONITORS)}, got {monitor!r}")
    return _MONITORS[monitor]


def _value(logs: dict, monitor: str) -> float:
    value = logs[monitor]
    if math.isnan(value):
        raise ValueError(f"the callback monitors {monitor!r}, which this fit does not "
                         "record: validation values need early_stopping=True or "
                         "validation data (fit's X_val and y_val)")
    return value


class _Tracker:
    """Best value of a monitored quantity, with patience."""

    def __init__(self, monitor: str, min_delta: float) -> None:
        self.sign = _check_monitor(monitor)  # +1: higher is better
        self.monitor, self.min_delta = monitor, float(min_delta)
        self.reset()

    def reset(self) -> None:
        self.best, self.wait = -math.inf, 0

    def update(self, logs: dict) -> bool:
        """Record this epoch; True if it improved on the best by more than min_delta."""
        value = self.sign * _value(logs, self.monitor)
        if value > self.best + self.min_delta:
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False


class EarlyStopping(Callback):
    """Stop when a monitored quantity has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : {"validation_loss", "validation_score", "loss"}, default="validation_loss"
        What to watch (validation values need ``early_stopping=True`` or ``X_val``).
    patience : int, default=5
        Epochs without improvement before stopping.
    min_delta : float, default=0.0
        Smallest change that counts as an improvement.
    restore_best_weights : bool, default=True
        At the end, put back the weights of the best epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import LSTMRegressor
    >>> from fastlstm.callbacks import EarlyStopping
    >>> X = np.random.default_rng(0).uniform(size=(32, 4, 1))
    >>> stop = EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    >>> LSTMRegressor(hidden_size=4, max_epochs=50, callbacks=[stop],
    ...               random_state=0).fit(X, X[:, -1, 0]).n_iter_
    2
    """

    def __init__(self, monitor: str = "validation_loss", patience: int = 5,
                 min_delta: float = 0.0, restore_best_weights: bool = True) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, ctx: TrainingContext) -> None:  # noqa: D102
        self._tracker = _Tracker(self.monitor, self.min_delta)
        self._best_weights = None

    def on_epoch_end(self, ctx: TrainingContext, epoch: int, logs: dict) -> None:  # noqa: D102
        if self._tracker.update(logs):
            if self.restore_best_weights:
                self._best_weights = ctx.get_weights()
        elif self._tracker.wait > self.patience:
            ctx.stop(f"{self.monitor} did not improve for {self.patience + 1} epochs")

    def on_train_end(self, ctx: TrainingContext) -> None:  # noqa: D102
        if self.restore_best_weights and self._best_weights is not None:
            ctx.set_weights(self._best_weights)


class LRScheduler(Callback):
    """Set the learning rate at the start of every epoch from a schedule.

    Epochs are counted from the start of each fit; the base rate is the
    estimator's ``learning_rate``.

    Parameters
    ----------
    schedule : {"step", "cosine"}, default="step"
        "step": multiply by ``gamma`` every ``step_size`` epochs (PyTorch's
        ``StepLR``); "cosine": anneal from the base rate to ``eta_min`` over
        ``t_max`` epochs (PyTorch's ``CosineAnnealingLR``).
    step_size : int, default=10
        Epochs per step of the step schedule.
    gamma : float, default=0.1
        Factor of the step schedule.
    t_max : int or None, default=None
        Length of the cosine schedule; None means the estimator's ``max_epochs``.
    eta_min : float, default=0.0
        Smallest rate of the cosine schedule (kept above zero).

    Examples
    --------
    >>> from fastlstm.callbacks import LRScheduler
    >>> s = LRScheduler("step", step_size=2, gamma=0.5)
    >>> [s.rate(0.1, e) for e in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, schedule: str = "step", step_size: int = 10, gamma: float = 0.1,
                 t_max: int | None = None, eta_min: float = 0.0) -> None:
        self.schedule = schedule
        self.step_size = step_size
        self.gamma = gamma
        self.t_max = t_max
        self.eta_min = eta_min

    def rate(self, base: float, epoch: int, t_max: int = 1) -> float:
        """The rate for 0-based ``epoch`` of a fit starting from ``base``."""
        if self.schedule == "step":
            return base * self.gamma ** (epoch // self.step_size)
        if self.schedule == "cosine":
            t = min(epoch, t_max)
            lr = self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
            return max(lr, 1e-12)
        raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")

    def on_train_begin(self, ctx: TrainingContext) -> None:  # noqa: D102
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        self._base = ctx.learning_rate
        self._t_max = self.t_max or getattr(ctx.estimator, "max_epochs", 1)
        self._epoch = 0

    def on_epoch_begin(self, ctx: TrainingContext, epoch: int) -> None:  # noqa: D102
        ctx.learning_rate = self.rate(self._base, self._epoch, self._t_max)
        self._epoch += 1


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when a quantity stops improving.

    Parameters
    ----------
    monitor : {"loss", "validation_loss", "validation_score"}, default="loss"
        What to watch.
    factor : float, default=0.1
        Multiplier of the rate on a plateau.
    patience : int, default=5
        Epochs without improvement before reducing (as Keras and PyTorch:
        the rate drops after ``patience + 1`` epochs without improvement).
    min_delta : float, default=1e-4
        Smallest change that counts as an improvement.
    min_lr : float, default=1e-8
        The rate never goes below this.

    Examples
    --------
    >>> from fastlstm.callbacks import ReduceLROnPlateau
    >>> ReduceLROnPlateau(factor=0.5).factor
    0.5
    """

    def __init__(self, monitor: str = "loss", factor: float = 0.1, patience: int = 5,
                 min_delta: float = 1e-4, min_lr: float = 1e-8) -> None:
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.min_delta = min_delta
        self.min_lr = min_lr

    def on_train_begin(self, ctx: TrainingContext) -> None:  # noqa: D102
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {self.factor!r}")
        self._tracker = _Tracker(self.monitor, self.min_delta)

    def on_epoch_end(self, ctx: TrainingContext, epoch: int, logs: dict) -> None:  # noqa: D102
        if not self._tracker.update(logs) and self._tracker.wait > self.patience:
            ctx.learning_rate = max(self.min_lr, ctx.learning_rate * self.factor)
            self._tracker.wait = 0


class ModelCheckpoint(Callback):
    """Save the model of the best epoch so far to a file.

    By default the file is written by :func:`fastlstm.save` (the safe
    format: a zip of a JSON header and ``.npy`` arrays, never pickle):
    ``fastlstm.load(path)`` gives back an estimator that predicts as the
    model did at its best epoch and can go on training (the file holds the
    optimizer state; the ``callbacks`` parameter is not saved).  With
    ``weights_only=True`` the file is instead a ``.npz`` of every parameter
    under its name (the layer's PyTorch names, then ``head.weight`` and
    ``head.bias``), read into a fitted estimator of the same architecture by
    :func:`load_checkpoint` (which reads both kinds of file).

    Parameters
    ----------
    path : str or os.PathLike
        Where to write (replaced atomically at each improvement).
    monitor : {"validation_loss", "validation_score", "loss"}, default="validation_loss"
        What "best" means.
    min_delta : float, default=0.0
        Smallest change that counts as an improvement.
    weights_only : bool, default=False
        Write only the named weights (``.npz``) instead of the whole model.

    Attributes
    ----------
    best_epoch_ : int or None
        The epoch (1-based) of the model in the file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastlstm
    >>> from fastlstm.callbacks import ModelCheckpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "best.fastlstm")
    >>> X = np.random.default_rng(0).uniform(size=(32, 4, 1))
    >>> reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=3, random_state=0,
    ...                              callbacks=[ModelCheckpoint(path, monitor="loss")])
    >>> reg = reg.fit(X, X[:, -1, 0])
    >>> best = fastlstm.load(path)
    >>> best.n_iter_ == reg.callbacks[0].best_epoch_
    True
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "validation_loss",
                 min_delta: float = 0.0, weights_only: bool = False) -> None:
        self.path = path
        self.monitor = monitor
        self.min_delta = min_delta
        self.weights_only = weights_only

    def on_train_begin(self, ctx: TrainingContext) -> None:  # noqa: D102
        if not isinstance(self.weights_only, (bool, np.bool_)):
            raise TypeError(f"weights_only must be a bool, got {self.weights_only!r}")
        self._tracker = _Tracker(self.monitor, self.min_delta)
        self.best_epoch_: int | None = None

    def on_epoch_end(self, ctx: TrainingContext, epoch: int, logs: dict) -> None:  # noqa: D102
        if self._tracker.update(logs):
            path = os.fspath(self.path)
            tmp = path + ".tmp"
            try:
                if self.weights_only:
                    with open(tmp, "wb") as f:
                        np.savez(f, **dict(zip(ctx.parameter_names(), ctx.get_weights(),
                                               strict=True)))
                else:
                    ctx.save(tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            self.best_epoch_ = epoch


class ProgressBar(Callback):
    """Show the progress of each epoch: a tqdm bar, or one plain line per epoch.

    The callback form of the estimators' ``verbose=1``, with a choice of
    stream and of tqdm.  Each epoch's bar counts training sequences and shows
    the running loss; when the epoch ends it shows the epoch's loss and
    validation score.  Warnings (a divergence, ``max_epochs``) are not
    repeated here.

    Parameters
    ----------
    stream : text stream or None, default=None
        Where to write; None means ``sys.stderr``.
    use_tqdm : bool or None, default=None
        None: a `tqdm <https://tqdm.github.io>`_ bar when tqdm is installed
        and the stream is a terminal, otherwise a line per epoch (drawn in
        place on a terminal); True: always tqdm (ImportError without it);
        False: never tqdm.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from fastlstm import LSTMRegressor
    >>> from fastlstm.callbacks import ProgressBar
    >>> out = io.StringIO()  # not a terminal: one plain line per epoch
    >>> X = np.random.default_rng(0).uniform(size=(32, 4, 1))
    >>> reg = LSTMRegressor(hidden_size=4, max_epochs=2, random_state=0,
    ...                     callbacks=[ProgressBar(stream=out)]).fit(X, X[:, -1, 0])
    >>> print(out.getvalue())  # doctest: +ELLIPSIS
    Epoch 1/2 [########################] 32/32 loss ... seq/s
    Epoch 2/2 [########################] 32/32 loss ... seq/s
    <BLANKLINE>
    """

    display_only = True

    def __init__(self, stream: Any = None, use_tqdm: bool | None = None) -> None:
        self.stream = stream
        self.use_tqdm = use_tqdm

    def __deepcopy__(self, memo: dict) -> ProgressBar:
        # clone() deep-copies callbacks: a copy writes to the same stream
        return type(self)(self.stream, self.use_tqdm)

    def on_train_begin(self, ctx: TrainingContext) -> None:  # noqa: D102
        from fastlstm.train.progress import make_progress

        if self.use_tqdm is not None and not isinstance(self.use_tqdm, (bool, np.bool_)):
            raise TypeError(f"use_tqdm must be None or a bool, got {self.use_tqdm!r}")
        self._progress = make_progress(1, ctx.total_epochs, self.stream, self.use_tqdm)
        self._seen, self._loss_sum = 0, 0.0

    def on_epoch_begin(self, ctx: TrainingContext, epoch: int) -> None:  # noqa: D102
        self._progress.start_epoch(epoch, ctx.n_samples)
        self._seen, self._loss_sum = 0, 0.0

    def on_batch_end(self, ctx: TrainingContext, batch: int, loss: float) -> None:  # noqa: D102
        done = ctx.samples_done
        self._loss_sum += loss * (done - self._seen)
        self._seen = done
        self._progress.update(done, self._loss_sum / max(done, 1))

    def on_epoch_end(self, ctx: TrainingContext, epoch: int, logs: dict) -> None:  # noqa: D102
        val = logs.get("validation_score", math.nan)
        self._progress.end_epoch(logs["loss"], None if math.isnan(val) else val)

    def on_train_end(self, ctx: TrainingContext) -> None:  # noqa: D102
        self._progress.close()


class _Events:
    """Calls every callback's hook in order; the training loop's only view of them."""

    def __init__(self, callbacks: Sequence[Callback], ctx: TrainingContext) -> None:
        self.callbacks, self.ctx = list(callbacks), ctx

    def train_begin(self, total_epochs: int | None = None) -> None:
        self.ctx.total_epochs = total_epochs
        for cb in self.callbacks:
            cb.on_train_begin(self.ctx)

    def epoch_begin(self, epoch: int, n_samples: int = 0) -> None:
        self.ctx.n_samples, self.ctx.samples_done = n_samples, 0
        for cb in self.callbacks:
            cb.on_epoch_begin(self.ctx, epoch)

    def batch_end(self, batch: int, loss: float, samples_done: int = 0) -> None:
        self.ctx.samples_done = samples_done
        for cb in self.callbacks:
            cb.on_batch_end(self.ctx, batch, loss)

    def live_batch_end(self) -> bool:
        """Whether a callback needs ``on_batch_end`` right after each step."""
        return any(type(cb).on_batch_end is not Callback.on_batch_end and not cb.display_only
                   for cb in self.callbacks)

    def epoch_end(self, epoch: int, logs: dict) -> str | None:
        """Run the hooks; the reason to stop, if a callback asked."""
        for cb in self.callbacks:
            cb.on_epoch_end(self.ctx, epoch, dict(logs))
        return self.ctx.stop_reason

    def train_end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end(self.ctx)
