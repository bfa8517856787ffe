"""scikit-learn estimators: :class:`LSTMClassifier` and :class:`LSTMRegressor`."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from fastlstm.estimators.interop import EstimatorInterop
from fastlstm.estimators.layout import to_batch_first, warn_about_layout
from fastlstm.estimators.memory import check_estimator_memory
from fastlstm.estimators.transaction import FitSnapshot
from fastlstm.estimators.validation import ValidationMonitor, temporal_split
from fastlstm.nn import registry
from fastlstm.runtime.parallel import blas_single_threaded
from fastlstm.train.callbacks import Callback, TrainingContext, _Events
from fastlstm.train.data import (
    Sequences,
    check_label_types,
    check_panel_targets,
    check_sequence_targets,
    check_sequences,
)
from fastlstm.train.guard import TrainingInterrupted
from fastlstm.train.history import History
from fastlstm.train.losses import absolute_error, huber
from fastlstm.train.network import (
    SequenceNet,
    TrainState,
    predict_outputs,
    softmax,
    softmax_cross_entropy,
    squared_error,
    train_epochs,
)
from fastlstm.train.optim import make_optimizer
from fastlstm.train.progress import make_progress

__all__ = ["LSTMClassifier", "LSTMRegressor"]

_OPTIMIZERS = ("adam", "adamw", "sgd")
_REGRESSION_LOSSES = {"squared_error": squared_error, "absolute_error": absolute_error,
                      "mae": absolute_error, "huber": huber}
_DTYPES = ("float32", "float64")
# parameters that fix the network's shape: warm starts must keep them
_ARCHITECTURE = ("cell", "hidden_size", "num_layers", "bidirectional", "dtype",
                 "channels_first")


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_sample_weight(sample_weight: Any, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    if _is_real(sample_weight):
        return np.full(n, float(sample_weight))
    w = check_array(sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight")
    if w.ndim != 1:
        raise ValueError("Sample weights must be 1D array or scalar")
    if w.shape[0] != n:
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}!")
    if np.any(w < 0):
        raise ValueError("Negative values in data passed to sample_weight")
    if n and not np.any(w > 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return w


_DOC_PARAMS = """
    cell : {"lstm", "rnn"}, default="lstm"
        The recurrent layer: :class:`fastlstm.LSTM`, or the tanh
        :class:`fastlstm.RNN` (fewer parameters per unit, but it loses
        information over long gaps; see the long-gap example in the docs).
    hidden_size : int, default=64
        Hidden units per direction of each recurrent layer.
    num_layers : int, default=1
        Stacked LSTM layers.
    bidirectional : bool, default=False
        Also run each layer backwards in time; the readout then sees both
        directions' final states.
    dropout : float, default=0.0
        Dropout on the inputs of every LSTM layer after the first, during
        training (PyTorch's meaning: no effect when ``num_layers=1``, with a
        warning).
    batch_size : int, default=32
        Sequences per mini-batch.  Sequences of different lengths are
        grouped by length so that little time goes to padding.
    max_epochs : int, default=100
        Most passes over the training data in :meth:`fit`.
    learning_rate : float, default=1e-3
        Step size of the optimizer.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        Adam, Adam with decoupled weight decay, or SGD with momentum.
    momentum : float, default=0.9
        Momentum of ``optimizer="sgd"``.
    weight_decay : float, default=0.0
        L2 penalty on all parameters (added to the gradient for "adam" and
        "sgd", decoupled for "adamw").
    clip_norm : float or None, default=5.0
        Largest global L2 norm of the gradient of one mini-batch; larger
        gradients are scaled down.  None disables clipping.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers), stop when the validation score has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, and restore the weights of
        the best epoch.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping (unless
        ``fit`` is given ``X_val`` and ``y_val``).
    validation_split : {"random", "last"}, default="random"
        Which samples are held out: a random (for classifiers stratified)
        share, or the last ``validation_fraction`` of them in the order
        given, for forecasting windows cut from one series in time order
        (a random split would validate on windows that overlap training
        windows).
    scoring : {None, "loss"}, default=None
        What early stopping watches on the validation data: None for the
        estimator's score (accuracy, or R² for regressors), "loss" for the
        training loss function (``validation_scores_`` then holds the
        negative loss, as in scikit-learn's gradient boosting).
    n_iter_no_change : int, default=10
        Epochs without improvement by ``tol`` before stopping (of the
        validation score with early stopping, of the training loss without).
    tol : float, default=1e-4
        Smallest improvement that counts.
    warm_start : bool, default=False
        Let :meth:`fit` continue from the current weights.
    shuffle : bool, default=True
        Reshuffle the mini-batches every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the shuffling, the validation split and the
        dropout masks.  The same seed, data and ``n_jobs`` give the same
        model, bit for bit.
    n_jobs : int or None, default=None
        Threads of the LSTM layer: None or -1 for all usable cores.
    channels_first : bool, default=False
        Read a 3D ``X`` as ``(n_samples, n_features, n_timesteps)`` (aeon's
        and sktime's ``(n_cases, n_channels, n_timepoints)``) and each 2D
        array of a list as ``(n_features, n_timesteps_i)``.  The layout is
        fixed by the first fit: predict reads ``X`` the same way.  Per-step
        outputs and targets (``sequence_output=True``) stay time-major.
    callbacks : list of fastlstm.callbacks.Callback or None, default=None
        Run at the start and end of training, of each epoch and of each
        batch (see :mod:`fastlstm.callbacks`: learning-rate schedules, early
        stopping on any recorded quantity, checkpoints of the best weights);
        a callback may stop the training.
    verbose : int, default=0
        0 is silent; 1 draws a progress bar per epoch (loss, validation score,
        sequences per second) on stderr: tqdm's on a terminal when tqdm is
        installed, one plain line per epoch when stderr is not a terminal;
        2 prints one line per epoch (see also
        :class:`fastlstm.callbacks.ProgressBar`).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the weights and the computation."""

_DOC_ATTRS = """
    n_features_in_ : int
        Features per time step seen during fit; for a 2D ``X`` (a table of
        univariate series) its number of columns, i.e. of time steps, which
        a 2D ``X`` at predict must match (3D or list inputs of one feature
        may have any length).
    loss_curve_ : list of float
        Mean training loss of each epoch.
    history_ : list of dict
        One record per epoch: ``epoch``, ``loss``, ``validation_loss``,
        ``validation_score`` (NaN without validation), ``learning_rate`` and
        ``seconds``; ``history_["loss"]`` lists one key, ``history_.plot()``
        draws the curves (matplotlib), ``history_.to_pandas()`` tabulates.
    best_loss_ : float
        Smallest value in ``loss_curve_``.
    validation_scores_ : list of float
        Validation score of each epoch (only with ``early_stopping=True`` or
        validation data ``X_val``, ``y_val`` given to :meth:`fit`).
    best_validation_score_ : float
        Best value in ``validation_scores_`` (likewise).
    validation_losses_ : list of float
        Validation loss of each epoch, on the scale of ``loss_curve_``
        (likewise).
    n_iter_ : int
        Epochs run.
    t_ : int
        Training sequences seen by the optimizer.
    network_ : object
        The trained network: ``network_.layer`` is the :class:`fastlstm.LSTM`
        (or :class:`fastlstm.RNN`, with a PyTorch-compatible ``state_dict``)
        and ``network_.weight``,
        ``network_.bias`` its linear readout."""

_DOC_NOTES = """
    Notes
    -----
    ``X`` may be a 3D array ``(n_samples, n_timesteps, n_features)``, a 2D
    array ``(n_samples, n_timesteps)`` of univariate series (a table whose
    columns are time steps), or a list of 2D arrays ``(n_timesteps_i,
    n_features)`` of different lengths.  Lists are batched by length and run
    with the layer's ``lengths``, so padding costs little and never changes a
    prediction.

    The sequence's representation is the last layer's final hidden state
    (each sequence's own last step; both directions when bidirectional).
    The LSTM starts from PyTorch's initialization except for the forget-gate
    biases, which start at 1 (as Keras' ``unit_forget_bias``): long
    dependencies are learned much sooner.

    Training stops early when the loss (or the validation score, with
    ``early_stopping``) stops improving, and on a non-finite loss, gradient
    or updated weight (the weights of the last complete epoch are restored,
    with a ``ConvergenceWarning``).  On Ctrl-C the model keeps the weights
    of its last complete step and the ``KeyboardInterrupt`` propagates.  A
    fit that raises any other error leaves the estimator as it was before
    the call (see "Reliability" in the user guide)."""


class _BaseLSTM(EstimatorInterop, BaseEstimator):
    """Shared parameters, validation, fit loop and prediction."""

    _kind = "base"

    def __init__(
        self,
        *,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_size: int = 32,
        max_epochs: int = 100,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        clip_norm: float | None = 5.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        validation_split: str = "random",
        scoring: str | None = None,
        channels_first: bool = False,
        callbacks: list | None = None,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        shuffle: bool = True,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.scoring = scoring
        self.channels_first = channels_first
        self.callbacks = callbacks
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.shuffle = shuffle
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.dtype = dtype

    # ------------------------------------------------------------ validation
    def _check_params(self) -> None:
        def fail(name: str, what: str) -> None:
            raise ValueError(
                f"The '{name}' parameter of {type(self).__name__} must be {what}. "
                f"Got {getattr(self, name)!r} instead."
            )

        for name in ("hidden_size", "num_layers", "batch_size", "max_epochs", "n_iter_no_change"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                fail(name, "an int in the range [1, inf)")
        for name in ("bidirectional", "early_stopping", "warm_start", "shuffle",
                     "channels_first"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                fail(name, "an instance of 'bool'")
        if not _is_real(self.dropout) or not 0 <= self.dropout < 1:
            fail("dropout", "a float in the range [0, 1)")
        if not _is_real(self.learning_rate) or not self.learning_rate > 0:
            fail("learning_rate", "a float in the range (0, inf)")
        if self.optimizer not in _OPTIMIZERS:
            fail("optimizer", f"a str among {set(_OPTIMIZERS)}")
        if not _is_real(self.momentum) or not 0 <= self.momentum < 1:
            fail("momentum", "a float in the range [0, 1)")
        if not _is_real(self.weight_decay) or not self.weight_decay >= 0:
            fail("weight_decay", "a float in the range [0, inf)")
        if self.clip_norm is not None and (not _is_real(self.clip_norm) or not self.clip_norm > 0):
            fail("clip_norm", "a float in the range (0, inf) or None")
        if not _is_real(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            fail("validation_fraction", "a float in the range (0, 1)")
        if self.validation_split not in ("random", "last"):
            fail("validation_split", "a str among {'random', 'last'}")
        if self.scoring is not None and self.scoring != "loss":
            fail("scoring", "None or 'loss'")
        if not _is_real(self.tol) or not self.tol >= 0:
            fail("tol", "a float in the range [0, inf)")
        if self.n_jobs is not None and (not _is_int(self.n_jobs) or self.n_jobs == 0):
            fail("n_jobs", "an int other than 0, or None")
        if not _is_int(self.verbose) or self.verbose < 0:
            fail("verbose", "an int in the range [0, inf)")
        if str(self.dtype) not in _DTYPES:
            fail("dtype", f"a str among {set(_DTYPES)}")
        if not isinstance(self.cell, str) or self.cell not in registry.names():
            fail("cell", f"a str among {set(registry.names())}")
        if self.callbacks is not None and not (
                isinstance(self.callbacks, (list, tuple))
                and all(isinstance(cb, Callback) for cb in self.callbacks)):
            fail("callbacks", "None or a list of fastlstm.callbacks.Callback instances")

    def _check_n_features(self, Xs: Sequences) -> None:
        name = type(self).__name__
        per_step = self.network_.config["n_features"]
        if Xs.from_2d and self._table_steps is not None:
            # fitted on a 2D table: its columns (time steps) are the features
            if Xs.dense.shape[1] != self._table_steps:
                raise ValueError(
                    f"X has {Xs.dense.shape[1]} features, but {name} is expecting "
                    f"{self.n_features_in_} features as input (X was fitted as a 2D array "
                    "of univariate series with that many time steps; pass X as a 3D array "
                    "(n_samples, n_timesteps, 1) or a list of series for other lengths)."
                )
        elif Xs.n_features != per_step:
            what = "a 2D array of univariate series" if Xs.from_2d else (
                f"sequences with {Xs.n_features} features per time step")
            raise ValueError(
                f"X has {Xs.n_features} features, but {name} is expecting {per_step} "
                f"features as input: X is {what}, and the model was fitted on sequences "
                f"with {per_step} features per time step."
            )

    def _validate_X(self, X: Any, reset: bool) -> Sequences:
        dtype = str(self.dtype) if reset else self.network_.dtype
        channels_first = (bool(self.channels_first) if reset
                          else getattr(self, "_channels_first", False))
        if reset:
            self._channels_first = channels_first
            warn_about_layout(X, channels_first, type(self).__name__)
        if not isinstance(X, (list, tuple)):
            _check_feature_names(self, X, reset=reset)
        Xs = check_sequences(to_batch_first(X, channels_first), dtype=dtype, estimator=self)
        if reset:
            self._table_steps = Xs.dense.shape[1] if Xs.from_2d else None
            self.n_features_in_ = Xs.n_features if self._table_steps is None else (
                self._table_steps)
        else:
            self._check_n_features(Xs)
        return Xs

    # ------------------------------------------------------------ hooks
    def _prepare_targets(self, y: Any, Xs: Sequences, reset: bool, classes: Any) -> Any:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _loss(self, out: np.ndarray, target: Any, weight: np.ndarray, lengths: Any) -> Any:
        raise NotImplementedError

    def _validation_score(self, Xs: Sequences, target: Any, weight: np.ndarray,
                          out: Any = None) -> float:
        raise NotImplementedError

    def _take_targets(self, target: Any, idx: np.ndarray) -> Any:
        if isinstance(target, Sequences):
            return target.take(idx)
        return target[idx]

    def _sequence_output(self) -> bool:
        return False

    def _stratify(self, target: Any) -> np.ndarray | None:
        return None

    # ------------------------------------------------------------ fitting
    def _fit(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool,
             classes: Any = None, X_val: Any = None, y_val: Any = None) -> _BaseLSTM:
        """Fit as one transaction: on any error the previous fitted state is back.

        Ctrl-C is the exception: the model keeps the weights of the last
        complete step (and curves and counters that match them), and the
        interrupt propagates as a plain ``KeyboardInterrupt``, raised here
        with no chain and none of the training loop's frames, so that an
        uncaught one ends a script as any Ctrl-C does (a short traceback,
        exit by SIGINT: status 130).
        """
        continuing = hasattr(self, "network_") and (incremental or self.warm_start is True)
        snapshot = FitSnapshot(self, continuing)
        try:
            with blas_single_threaded():  # once per fit, not per batch
                return self._fit_body(X, y, sample_weight, incremental=incremental,
                                      classes=classes, X_val=X_val, y_val=y_val)
        except TrainingInterrupted as exc:
            interrupt_args = exc.args  # the model is published, usable
        except BaseException:
            snapshot.restore(self)
            raise
        # outside the handler: no "during handling" context to show.  Exactly
        # KeyboardInterrupt, as the interpreter exits by SIGINT for no subclass
        raise KeyboardInterrupt(*interrupt_args)

    def _fit_body(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool,
                  classes: Any = None, X_val: Any = None, y_val: Any = None) -> _BaseLSTM:
        self._check_params()
        if (X_val is None) != (y_val is None):
            given, missing = ("X_val", "y_val") if y_val is None else ("y_val", "X_val")
            raise ValueError(f"{given} was given without {missing}: X_val and y_val must be "
                             "given together (the validation sequences and their targets).")
        check_estimator_memory(self, X, fitting=True)
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        continuing = (incremental or self.warm_start) and hasattr(self, "network_")
        if continuing:
            changed = [a for a in _ARCHITECTURE
                       if getattr(self, a) != self._architecture.get(a)]
            if changed:
                raise ValueError(
                    f"Cannot continue training with changed {', '.join(changed)}; "
                    "fit a new model (warm_start=False)."
                )
        Xs = self._validate_X(X, reset=not continuing)
        self._note_fit_lengths(Xs, continuing)  # to_onnx's default
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        check_panel_targets(y, Xs, per_step=self._sequence_output())
        target = self._prepare_targets(y, Xs, reset=not continuing, classes=classes)
        weight = self._sample_weight(sample_weight, Xs.n_samples, target)

        if not continuing:
            self._rng = check_random_state(self.random_state)
            seed = int(self._rng.randint(np.iinfo(np.int32).max))
            self._architecture = {a: getattr(self, a) for a in _ARCHITECTURE}
            self.network_ = SequenceNet(
                Xs.n_features, self._n_outputs(), cell=self.cell, hidden_size=self.hidden_size,
                num_layers=self.num_layers, bidirectional=self.bidirectional,
                dropout=self.dropout, dtype=str(self.dtype), n_jobs=self.n_jobs,
                sequence_output=self._sequence_output(), random_state=seed,
            )
            self._state = TrainState()
            self._optimizer = None
        net = self.network_
        net.set_n_jobs(self.n_jobs)
        net.layer.dropout = float(self.dropout)

        if not incremental or self._optimizer is None or self._optimizer_name != self.optimizer:
            self._optimizer = make_optimizer(
                self.optimizer, net.parameters(), learning_rate=self.learning_rate,
                weight_decay=self.weight_decay, momentum=self.momentum,
            )
            self._optimizer_name = self.optimizer
        self._optimizer.learning_rate = float(self.learning_rate)
        self._optimizer.weight_decay = float(self.weight_decay)

        validate = None
        X_train, t_train, w_train = Xs, target, weight
        if X_val is not None:  # scored every epoch; decides the stop with early_stopping
            Xs_val = self._validation_X(X_val)
            check_panel_targets(y_val, Xs_val, per_step=self._sequence_output(),
                                input_name="y_val", x_name="X_val")
            t_val = self._validation_targets(y_val, Xs_val)
            validate = ValidationMonitor(self, Xs_val, t_val, np.ones(Xs_val.n_samples),
                                         self.scoring)
        elif self.early_stopping:
            idx_train, idx_val = self._split(Xs.n_samples, target)
            X_train = Xs.take(idx_train)
            t_train = self._take_targets(target, idx_train)
            w_train = weight[idx_train]
            validate = ValidationMonitor(self, Xs.take(idx_val),
                                         self._take_targets(target, idx_val),
                                         weight[idx_val], self.scoring)

        self._validating = validate is not None
        state = self._state
        if not incremental:
            state.reset_stopping()

        def get_batch(idx: np.ndarray) -> tuple:
            x, lengths = X_train.padded(idx)
            if isinstance(t_train, Sequences):
                t = t_train.padded(idx)[0]
            else:
                t = t_train[idx]
            return x, lengths, t, w_train[idx]

        n_epochs = 1 if incremental else self.max_epochs
        total = None if incremental else state.n_iter + self.max_epochs
        try:
            reason = train_epochs(
                net, self._optimizer, state,
                lengths=X_train.lengths, get_batch=get_batch, loss_fn=self._loss,
                n_epochs=n_epochs, batch_size=self.batch_size, shuffle=self.shuffle,
                rng=self._rng, clip_norm=self.clip_norm, tol=self.tol,
                n_iter_no_change=self.n_iter_no_change, validate=validate,
                stop_on_plateau=not incremental,
                progress=make_progress(self.verbose, total), total_epochs=total,
                events=None if not self.callbacks else _Events(
                    self.callbacks, TrainingContext(self, net, self._optimizer, state.history)),
                early_stopping=bool(self.early_stopping),
            )
        except TrainingInterrupted:
            self._publish_state()  # the last complete step's model, usable
            raise
        self._publish_state()
        if reason == "max_epochs" and not incremental:
            warnings.warn(
                f"Stochastic Optimizer: Maximum epochs ({self.max_epochs}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )
        return self

    def _validation_X(self, X_val: Any) -> Sequences:
        """``X_val`` checked as ``X`` is, against the model (at least 2 sequences)."""
        try:
            check_estimator_memory(self, X_val, fitting=False,
                                   n_outputs=self.network_.config["n_outputs"])
            Xs_val = self._validate_X(X_val, reset=False)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"Invalid validation data X_val: {exc}") from None
        if Xs_val.n_samples < 2:
            raise ValueError("X_val needs at least 2 sequences to validate on; got "
                             f"{Xs_val.n_samples}.")
        return Xs_val

    def _validation_targets(self, y_val: Any, Xs_val: Sequences) -> Any:
        """``y_val`` checked and prepared as ``y`` is (labels among ``classes_``)."""
        try:
            return self._prepare_targets(y_val, Xs_val, reset=False, classes=None)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"Invalid validation targets y_val (for X_val): {exc}") from None

    def _split(self, n: int, target: Any) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(n)
        stratify = self._stratify(target)
        if self.validation_split == "last":
            idx_train, idx_val = temporal_split(n, self.validation_fraction)
        else:
            try:
                idx_train, idx_val = train_test_split(
                    idx, test_size=self.validation_fraction, random_state=self._rng,
                    stratify=stratify,
                )
            except ValueError:
                if stratify is None:
                    raise
                # too few samples of some class to stratify: plain random split
                idx_train, idx_val = train_test_split(
                    idx, test_size=self.validation_fraction, random_state=self._rng
                )
        if len(idx_val) < 2 or len(idx_train) < 1:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the "
                "size of your dataset."
            )
        return np.sort(idx_train), np.sort(idx_val)

    def _sample_weight(self, sample_weight: Any, n: int, target: Any) -> np.ndarray:
        return _check_sample_weight(sample_weight, n)

    def _publish_state(self) -> None:
        s = self._state
        self.loss_curve_ = list(s.loss_curve)
        self.history_ = History(s.history)
        self.best_loss_ = float(s.best_loss) if s.loss_curve else float("nan")
        self.n_iter_ = s.n_iter
        self.t_ = s.t
        if getattr(self, "_validating", self.early_stopping):
            self.validation_scores_ = list(s.validation_scores)
            self.best_validation_score_ = s.best_validation_score
            self.validation_losses_ = list(s.validation_losses)
        else:
            for name in ("validation_scores_", "best_validation_score_", "validation_losses_"):
                if hasattr(self, name) and not self.warm_start:
                    delattr(self, name)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None,
            y_val: Any = None) -> _BaseLSTM:
        """Train the model on sequences ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like or list of array-like
            A 3D array ``(n_samples, n_timesteps, n_features)``, a 2D array
            ``(n_samples, n_timesteps)`` of univariate series, or a list of
            2D arrays ``(n_timesteps_i, n_features)`` of different lengths.
        y : array-like
            Targets (see the class description).
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sequence in the loss.
        X_val, y_val : array-like, default=None
            Validation data, given together and checked as ``X`` and ``y``
            are: the model is scored on them after every epoch
            (``validation_scores_``, ``validation_losses_``, ``history_``).
            With ``early_stopping=True`` they take the place of the held-out
            share of ``X`` (all of ``X`` is then trained on) and decide when
            to stop; without, they are only recorded and training stops as
            it would without them.

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMRegressor
        >>> X = np.random.default_rng(0).uniform(size=(64, 5, 1))
        >>> reg = LSTMRegressor(hidden_size=8, max_epochs=2, random_state=0)
        >>> reg.fit(X, X[:, -1, 0]).n_iter_
        2
        >>> reg.set_params(early_stopping=True).fit(X[:48], X[:48, -1, 0], X_val=X[48:],
        ...                                          y_val=X[48:, -1, 0]).validation_losses_
        [...]
        >>> reg.set_params(early_stopping=False).fit(X[:48], X[:48, -1, 0], X_val=X[48:],
        ...                                           y_val=X[48:, -1, 0]).n_iter_
        2
        >>> len(reg.validation_scores_)  # scored every epoch, without stopping early
        2
        """
        return self._fit(X, y, sample_weight, incremental=False, X_val=X_val, y_val=y_val)

    # ------------------------------------------------------------ prediction
    def _outputs(self, X: Any) -> tuple[Sequences, Any]:
        check_is_fitted(self, "network_")
        check_estimator_memory(self, X, fitting=False, n_outputs=self.network_.config[
            "n_outputs"])
        Xs = self._validate_X(X, reset=False)
        self.network_.set_n_jobs(self.n_jobs)
        with blas_single_threaded():  # once per predict, not per batch
            return Xs, predict_outputs(self.network_, Xs, self.batch_size)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


class LSTMClassifier(ClassifierMixin, _BaseLSTM):
    __doc__ = f"""Sequence classifier: an LSTM and a softmax readout of its final state.

    Trained with softmax cross-entropy by mini-batch Adam, AdamW or SGD.
    Sequences are read batch-first; see the ``X`` forms under :meth:`fit`.

    Parameters
    ----------{_DOC_PARAMS}
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, multiplied with ``sample_weight``;
        "balanced" weighs them inversely to their frequency in ``y``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.{_DOC_ATTRS}

    See Also
    --------
    LSTMRegressor : The same network with a linear output and squared loss.
{_DOC_NOTES}

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import LSTMClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(60, 5, 2)).astype(np.float32)
    >>> y = np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
    >>> clf = LSTMClassifier(hidden_size=8, max_epochs=30, learning_rate=0.02,
    ...                      random_state=0).fit(X, y)
    >>> clf.classes_
    array(['down', 'up'], dtype='<U4')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> clf.score(X, y) > 0.9
    True
    """

    _kind = "classifier"

    def __init__(
        self,
        *,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_size: int = 32,
        max_epochs: int = 100,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        clip_norm: float | None = 5.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        validation_split: str = "random",
        scoring: str | None = None,
        channels_first: bool = False,
        callbacks: list | None = None,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        shuffle: bool = True,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        dtype: str = "float32",
        class_weight: dict | str | None = None,
    ) -> None:
        super().__init__(
            cell=cell, hidden_size=hidden_size, num_layers=num_layers,
            bidirectional=bidirectional, dropout=dropout, batch_size=batch_size,
            max_epochs=max_epochs,
            learning_rate=learning_rate, optimizer=optimizer, momentum=momentum,
            weight_decay=weight_decay, clip_norm=clip_norm, early_stopping=early_stopping,
            validation_fraction=validation_fraction, validation_split=validation_split,
            scoring=scoring, channels_first=channels_first, callbacks=callbacks,
            n_iter_no_change=n_iter_no_change,
            tol=tol, warm_start=warm_start, shuffle=shuffle, random_state=random_state,
            n_jobs=n_jobs, verbose=verbose, dtype=dtype,
        )
        self.class_weight = class_weight

    def _check_params(self) -> None:
        super()._check_params()
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ValueError(
                "The 'class_weight' parameter of LSTMClassifier must be a dict, 'balanced' "
                f"or None. Got {cw!r} instead."
            )

    def _prepare_targets(self, y: Any, Xs: Sequences, reset: bool, classes: Any) -> np.ndarray:
        check_label_types(y)
        y = column_or_1d(y, warn=True)
        if len(y) != Xs.n_samples:
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{Xs.n_samples}, {len(y)}]"
            )
        check_array(y, ensure_2d=False, dtype=None, input_name="y")  # NaN, inf
        check_classification_targets(y)
        if reset:
            if classes is not None:
                classes_ = np.asarray(classes)
                if classes_.ndim != 1 or len(np.unique(classes_)) != len(classes_):
                    raise ValueError("classes must be a 1D array of unique labels.")
                classes_ = np.unique(classes_)
            else:
                classes_ = np.unique(y)
            if len(classes_) < 2:
                raise ValueError(
                    "The number of classes has to be greater than one; got "
                    f"{len(classes_)} class ({classes_[0]!r}): a classifier needs samples "
                    "of at least 2 classes in y."
                )
            self.classes_ = classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on the first call to partial_fit "
                f"(classes_={self.classes_!r})."
            )
        idx = np.searchsorted(self.classes_, y)
        idx[idx >= len(self.classes_)] = 0
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not in classes_: {np.unique(y[unknown])[:5].tolist()}; "
                f"classes_ is {self.classes_.tolist()}."
            )
        return idx.astype(np.intp)

    def _sample_weight(self, sample_weight: Any, n: int, target: np.ndarray) -> np.ndarray:
        w = _check_sample_weight(sample_weight, n)
        if self.class_weight == "balanced":
            w = w * self._balanced_weights(target)[target]
        elif self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=self.classes_,
                                      y=self.classes_[target])
            w = w * cw[target]
        return w

    def _balanced_weights(self, target: np.ndarray) -> np.ndarray:
        # n_samples / (n_classes * count), as compute_class_weight("balanced"),
        # over the classes present in y; absent classes get weight 1
        counts = np.bincount(target, minlength=len(self.classes_)).astype(np.float64)
        present = counts > 0
        cw = np.ones(len(self.classes_))
        cw[present] = counts[present].sum() / (present.sum() * counts[present])
        return cw

    def _stratify(self, target: np.ndarray) -> np.ndarray | None:
        return target

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _loss(self, out: np.ndarray, target: np.ndarray, weight: np.ndarray,
              lengths: Any) -> tuple[float, np.ndarray]:
        return softmax_cross_entropy(out, target, weight)

    def _validation_score(self, Xs: Sequences, target: np.ndarray, weight: np.ndarray,
                          out: Any = None) -> float:
        if out is None:
            out = predict_outputs(self.network_, Xs, self.batch_size)
        return float(accuracy_score(target, out.argmax(axis=1), sample_weight=weight))

    def partial_fit(self, X: Any, y: Any, classes: Any = None,
                    sample_weight: Any = None) -> LSTMClassifier:
        """Train for one epoch over ``X``, continuing from the current weights.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.
        y : array-like of shape (n_samples,)
            Labels.
        classes : array-like of shape (n_classes,), default=None
            All labels that can ever appear; required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sequence in the loss.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(40, 4, 2))
        >>> clf = LSTMClassifier(hidden_size=8, random_state=0)
        >>> clf.partial_fit(X[:20], ["a", "b"] * 10, classes=["a", "b"]).t_
        20
        >>> clf.partial_fit(X[20:], ["b", "a"] * 10).t_
        40
        """
        if not hasattr(self, "network_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: compute the "
                "weights with sklearn.utils.class_weight.compute_class_weight on a "
                "representative y and pass them as a dict."
            )
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of each sequence.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2))
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> proba = clf.predict_proba(X[:3])
        >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1))
        ((3, 2), True)
        """
        _, out = self._outputs(X)
        return softmax(out)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2))
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> bool(np.allclose(np.exp(clf.predict_log_proba(X[:3])), clf.predict_proba(X[:3])))
        True
        """
        _, out = self._outputs(X)
        z = out - out.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each sequence.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2))
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> set(clf.predict(X)) <= {"high", "low"}
        True
        """
        _, out = self._outputs(X)
        return self.classes_[out.argmax(axis=1)]

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class LSTMRegressor(RegressorMixin, _BaseLSTM):
    __doc__ = f"""Sequence regressor: an LSTM and a linear readout, trained on squared error.

    Predicts one value (or vector) per sequence from its final state, or with
    ``sequence_output=True`` one per time step.  Targets are standardized
    internally (per output, from the first fit's data); ``loss_curve_`` is
    the mean loss (squared error by default) on that standardized scale.

    Parameters
    ----------{_DOC_PARAMS}
    sequence_output : bool, default=False
        Predict at every time step: ``y`` is ``(n_samples, n_timesteps)`` or
        ``(n_samples, n_timesteps, n_outputs)``, or for a ragged ``X`` a list
        of arrays ``(n_timesteps_i,)`` or ``(n_timesteps_i, n_outputs)``.
    loss : {{"squared_error", "absolute_error", "huber"}}, default="squared_error"
        Training loss: mean squared error, mean absolute error (robust to
        outliers; ``"mae"`` is accepted too), or Huber's loss, quadratic
        within one standard deviation of the target and linear beyond
        (errors are measured on the standardized targets).

    Attributes
    ----------{_DOC_ATTRS}

    See Also
    --------
    LSTMClassifier : The same network with a softmax output.
{_DOC_NOTES}

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import LSTMRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(size=(100, 6, 1)).astype(np.float32)
    >>> y = X.sum(axis=(1, 2))
    >>> reg = LSTMRegressor(hidden_size=8, max_epochs=40, learning_rate=0.02,
    ...                     random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    >>> reg.score(X, y) > 0.9
    True
    """

    _kind = "regressor"

    def __init__(
        self,
        *,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_size: int = 32,
        max_epochs: int = 100,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        clip_norm: float | None = 5.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        validation_split: str = "random",
        scoring: str | None = None,
        channels_first: bool = False,
        callbacks: list | None = None,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        shuffle: bool = True,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        dtype: str = "float32",
        sequence_output: bool = False,
        loss: str = "squared_error",
    ) -> None:
        super().__init__(
            cell=cell, hidden_size=hidden_size, num_layers=num_layers,
            bidirectional=bidirectional, dropout=dropout, batch_size=batch_size,
            max_epochs=max_epochs,
            learning_rate=learning_rate, optimizer=optimizer, momentum=momentum,
            weight_decay=weight_decay, clip_norm=clip_norm, early_stopping=early_stopping,
            validation_fraction=validation_fraction, validation_split=validation_split,
            scoring=scoring, channels_first=channels_first, callbacks=callbacks,
            n_iter_no_change=n_iter_no_change,
            tol=tol, warm_start=warm_start, shuffle=shuffle, random_state=random_state,
            n_jobs=n_jobs, verbose=verbose, dtype=dtype,
        )
        self.sequence_output = sequence_output
        self.loss = loss

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.sequence_output, (bool, np.bool_)):
            raise ValueError(
                "The 'sequence_output' parameter of LSTMRegressor must be an instance of "
                f"'bool'. Got {self.sequence_output!r} instead."
            )
        if not isinstance(self.loss, str) or self.loss not in _REGRESSION_LOSSES:
            raise ValueError(
                "The 'loss' parameter of LSTMRegressor must be a str among "
                f"{sorted(_REGRESSION_LOSSES)}. Got {self.loss!r} instead."
            )

    def _sequence_output(self) -> bool:
        return bool(self.sequence_output)

    def _prepare_targets(self, y: Any, Xs: Sequences, reset: bool, classes: Any) -> Any:
        if reset:
            self._fitted_sequence_output = bool(self.sequence_output)
        elif bool(self.sequence_output) != self._fitted_sequence_output:
            raise ValueError("Cannot continue training with a changed sequence_output.")
        if self.sequence_output:
            Y = check_sequence_targets(y, Xs)
            steps = Y.steps()
            if reset:
                self._y_single = (
                    np.ndim(y[0]) == 1 if isinstance(y, (list, tuple)) else np.ndim(y) == 2
                )
                self._set_scaling(steps)
            elif steps.shape[1] != self._y_mean.shape[0]:
                raise ValueError(
                    f"y has {steps.shape[1]} outputs but the model was fitted with "
                    f"{self._y_mean.shape[0]}."
                )
            steps -= self._y_mean
            steps /= self._y_scale
            return Y

        y_arr = check_array(y, ensure_2d=False, allow_nd=True, dtype=np.float64,
                            input_name="y")
        if y_arr.ndim not in (1, 2):
            raise ValueError(
                f"y must have shape (n_samples,) or (n_samples, n_outputs); got {y_arr.shape}. "
                "For one target per time step use sequence_output=True."
            )
        if y_arr.shape[0] != Xs.n_samples:
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{Xs.n_samples}, {y_arr.shape[0]}]"
            )
        y2 = y_arr.reshape(len(y_arr), -1)
        if reset:
            self._y_single = y_arr.ndim == 1
            self._set_scaling(y2)
        elif y2.shape[1] != self._y_mean.shape[0]:
            raise ValueError(
                f"y has {y2.shape[1]} outputs but the model was fitted with "
                f"{self._y_mean.shape[0]}."
            )
        return (y2 - self._y_mean) / self._y_scale

    def _set_scaling(self, y2: np.ndarray) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # reported below
            mean = y2.mean(axis=0)
            scale = y2.std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
            raise ValueError("y is too large to standardize in float64 (its mean or spread "
                             f"overflows; largest |y| {np.abs(y2).max():.3g}): rescale y")
        scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
        self._y_mean = mean
        self._y_scale = scale

    def _n_outputs(self) -> int:
        return len(self._y_mean)

    def _loss(self, out: np.ndarray, target: np.ndarray, weight: np.ndarray,
              lengths: Any) -> tuple[float, np.ndarray]:
        return _REGRESSION_LOSSES[self.loss](out, target, weight, lengths)

    def _validation_score(self, Xs: Sequences, target: Any, weight: np.ndarray,
                          out: Any = None) -> float:
        if out is None:
            out = predict_outputs(self.network_, Xs, self.batch_size)
        if isinstance(out, Sequences):
            w = np.repeat(weight, Xs.lengths)
            return float(r2_score(target.steps(), out.steps(), sample_weight=w))
        return float(r2_score(target, out, sample_weight=weight))

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> LSTMRegressor:
        """Train for one epoch over ``X``, continuing from the current weights.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.
        y : array-like
            Targets, as for :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sequence in the loss.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMRegressor
        >>> X = np.random.default_rng(0).uniform(size=(64, 5, 1))
        >>> reg = LSTMRegressor(hidden_size=8, max_epochs=3, random_state=0)
        >>> for _ in range(3):
        ...     reg = reg.partial_fit(X, X[:, -1, 0])
        >>> reg.n_iter_
        3
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Predict the targets of each sequence (or of each time step).

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.

        Returns
        -------
        y : ndarray or list of ndarray
            ``(n_samples,)`` or ``(n_samples, n_outputs)`` as ``y`` in fit;
            with ``sequence_output=True``, ``(n_samples, n_timesteps[,
            n_outputs])``, or a list of ``(n_timesteps_i[, n_outputs])``
            arrays for a list ``X``.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMRegressor
        >>> X = np.random.default_rng(0).uniform(size=(64, 5, 1))
        >>> reg = LSTMRegressor(hidden_size=8, max_epochs=3, random_state=0)
        >>> reg.fit(X, X[:, -1, 0]).predict(X[:4]).shape
        (4,)
        >>> seq = LSTMRegressor(hidden_size=8, max_epochs=2, sequence_output=True, random_state=0)
        >>> seq.fit(X, X[:, :, 0]).predict(X[:4]).shape
        (4, 5)
        """
        Xs, out = self._outputs(X)
        if isinstance(out, Sequences):
            steps = out.steps()
            steps *= self._y_scale
            steps += self._y_mean
            if Xs.as_list:
                seqs = out.to_list()
                return [s[:, 0] for s in seqs] if self._y_single else seqs
            dense = out.dense
            return dense[:, :, 0] if self._y_single else dense
        out = out * self._y_scale + self._y_mean
        return out[:, 0] if self._y_single else out

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R² of the predictions.

        With ``sequence_output=True`` every valid time step counts as one
        sample (with its sequence's weight); outputs are averaged uniformly.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.
        y : array-like
            True targets, as for :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sequence.

        Returns
        -------
        score : float

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMRegressor
        >>> X = np.random.default_rng(0).uniform(size=(64, 5, 1))
        >>> reg = LSTMRegressor(hidden_size=8, max_epochs=3, random_state=0)
        >>> score = reg.fit(X, X[:, -1, 0]).score(X, X[:, -1, 0])
        >>> bool(score <= 1.0)
        True
        """
        if not self.sequence_output:
            return super().score(X, y, sample_weight=sample_weight)
        check_is_fitted(self, "network_")
        Xs = self._validate_X(X, reset=False)
        Y = check_sequence_targets(y, Xs)
        pred = self.predict(X)
        pred_steps = (np.concatenate([np.reshape(p, (len(p), -1)) for p in pred])
                      if isinstance(pred, list) else np.reshape(pred, (-1, Y.n_features)))
        w = None
        if sample_weight is not None:
            w = np.repeat(_check_sample_weight(sample_weight, Xs.n_samples), Xs.lengths)
        return float(r2_score(Y.steps(), pred_steps, sample_weight=w))

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
