"""What the estimators share: ``_BaseLSTM``, their common parameters, fit and predict.

The base class validates the parameters and ``X``, fits as one transaction
(validation split or data, the training loop, the published curves) and
runs the network for prediction; :class:`LSTMClassifier` and
:class:`LSTMRegressor` supply the targets, the loss and the score.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from fastlstm.estimators.interop import EstimatorInterop
from fastlstm.estimators.layout import to_batch_first, warn_about_layout
from fastlstm.estimators.memory import check_estimator_memory
from fastlstm.estimators.transaction import FitSnapshot
from fastlstm.estimators.validation import ValidationMonitor, temporal_split
from fastlstm.nn import registry
from fastlstm.runtime.parallel import blas_single_threaded
from fastlstm.runtime.warn import warn_user
from fastlstm.train.callbacks import Callback, TrainingContext, _Events
from fastlstm.train.data import check_sequences
from fastlstm.train.guard import TrainingInterrupted
from fastlstm.train.history import History
from fastlstm.train.network import SequenceNet, TrainState, predict_outputs, train_epochs
from fastlstm.train.optim import make_optimizer
from fastlstm.train.panels import check_panel_targets
from fastlstm.train.progress import make_progress
from fastlstm.train.sequences import Sequences

_OPTIMIZERS = ("adam", "adamw", "sgd")
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

    def _engine_loss(self) -> str | None:
        """The compiled step's name for ``_loss`` (fastlstm.train.engine), or None."""
        return None

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

        # the whole set, when a batch is exactly its rows (sequences of one length),
        # or its rows padded to the set's longest (several lengths, float32: what
        # the compiled runs read), unless padding would more than double the set
        whole_set = None
        if X_train.dense is not None and not isinstance(t_train, Sequences):
            whole_set = (np.ascontiguousarray(X_train.dense), t_train, w_train)
        elif not isinstance(t_train, Sequences) and _pads_cheaply(X_train):
            x_all = X_train.padded(np.arange(len(X_train.lengths)))[0]
            whole_set = (x_all, t_train, w_train, X_train.lengths)

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
                # a loss replaced on the instance is computed as given, in Python
                engine_loss=None if "_loss" in vars(self) else self._engine_loss(),
                whole_set=whole_set,
            )
        except TrainingInterrupted:
            self._publish_state()  # the last complete step's model, usable
            raise
        self._publish_state()
        if reason == "max_epochs" and not incremental:
            warn_user(
                f"Stochastic Optimizer: Maximum epochs ({self.max_epochs}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
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


# the most a set of several lengths may grow when padded for the compiled runs:
# twice its own values, and at least this many bytes
_PAD_BYTES = 16 << 20


def _pads_cheaply(X: Any) -> bool:
    """Whether a float32 set of several lengths, padded to its longest, stays small."""
    values = getattr(X, "values", None)
    if values is None or values.dtype != np.float32 or len(X.lengths) == 0:
        return False
    padded = len(X.lengths) * int(X.lengths.max()) * X.n_features * 4
    return padded <= max(2 * values.nbytes, _PAD_BYTES)
