"""The sequence regressor :class:`LSTMRegressor`."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from fastlstm.estimators.base import _BaseLSTM, _check_sample_weight
from fastlstm.estimators.docstrings import _DOC_ATTRS, _DOC_NOTES, _DOC_PARAMS
from fastlstm.train.data import check_sequence_targets
from fastlstm.train.losses import absolute_error, huber
from fastlstm.train.network import predict_outputs, squared_error
from fastlstm.train.sequences import Sequences

__all__ = ["LSTMRegressor"]

_REGRESSION_LOSSES = {"squared_error": squared_error, "absolute_error": absolute_error,
                      "mae": absolute_error, "huber": huber}


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

    def _engine_loss(self) -> str | None:
        return "squared_error" if self.loss == "squared_error" else None

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
