"""``SequenceScaler``: standardize sequences per feature over all time steps."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from fastlstm.estimators.layout import layout_warning, to_batch_first
from fastlstm.train.data import check_sequences
from fastlstm.train.sequences import Sequences

__all__ = ["SequenceScaler"]


class SequenceScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardize sequences per feature, over all time steps of all sequences.

    scikit-learn's ``StandardScaler`` refuses 3D and ragged input; this
    transformer takes every form of ``X`` the fastlstm estimators take (a 3D
    array, a 2D table of univariate series, a list of sequences of different
    lengths, a DataFrame with an ``(instance, time)`` MultiIndex) and returns
    the same form, layout and float precision, so that it can precede an
    :class:`LSTMClassifier` or :class:`LSTMRegressor` in a ``Pipeline`` or a
    ``GridSearchCV``.  Each feature is centred and scaled by its mean and
    standard deviation over every valid time step (padding never counts).

    Parameters
    ----------
    with_mean : bool, default=True
        Subtract the mean of each feature.
    with_std : bool, default=True
        Divide by the standard deviation of each feature (features that are
        constant keep a scale of 1).
    channels_first : bool, default=False
        As for the estimators: read a 3D ``X`` as ``(n_samples, n_features,
        n_timesteps)`` (aeon's and sktime's ``(n_cases, n_channels,
        n_timepoints)``) and each 2D array of a list as ``(n_features,
        n_timesteps_i)``, so that each channel is standardized.  The output
        has the layout of the input.  The layout is fixed by :meth:`fit`.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Mean of each feature per time step (zeros when ``with_mean=False``).
    scale_ : ndarray of shape (n_features,)
        Standard deviation of each feature (ones when ``with_std=False``).
    n_features_in_ : int
        As for the estimators: features per time step, or for a 2D ``X`` its
        number of columns (time steps).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        The columns of a DataFrame ``X`` whose column names are all strings.
    n_steps_seen_ : int
        Time steps the statistics were computed from.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import SequenceScaler
    >>> X = [np.array([[1.0, 10.0], [3.0, 30.0]]), np.array([[5.0, 50.0]])]  # ragged
    >>> scaler = SequenceScaler().fit(X)
    >>> scaler.mean_, scaler.n_steps_seen_
    (array([ 3., 30.]), 3)
    >>> Z = scaler.transform(X)
    >>> [z.shape for z in Z]
    [(2, 2), (1, 2)]
    >>> bool(np.allclose(scaler.inverse_transform(Z)[1], X[1]))
    True

    aeon's and sktime's layout, ``(n_cases, n_channels, n_timepoints)``:

    >>> X = np.random.default_rng(0).normal(5, 2, size=(40, 6, 100)).astype(np.float32)
    >>> scaler = SequenceScaler(channels_first=True).fit(X)
    >>> scaler.mean_.shape
    (6,)
    >>> Z = scaler.transform(X)
    >>> Z.shape, Z.dtype, bool(np.allclose(Z.std(axis=(0, 2)), 1, atol=1e-4))
    ((40, 6, 100), dtype('float32'), True)
    """

    def __init__(self, *, with_mean: bool = True, with_std: bool = True,
                 channels_first: bool = False) -> None:
        self.with_mean = with_mean
        self.with_std = with_std
        self.channels_first = channels_first

    def __setstate__(self, state: dict) -> None:  # noqa: D105
        # scalers pickled before channels_first existed read batch-first
        state = dict(state)
        state.setdefault("channels_first", False)
        if "scale_" in state:
            state.setdefault("_channels_first", False)
        super().__setstate__(state)

    @staticmethod
    def _dtype(X: Any) -> Any:
        """float32 for input that is all float32 (an array, every array of a list,
        every column of a DataFrame), else float64."""
        if hasattr(X, "dtypes") and getattr(X, "ndim", 1) == 2:  # a DataFrame
            dtypes = list(X.dtypes)
        elif isinstance(X, (list, tuple)):
            dtypes = [getattr(x, "dtype", None) for x in X]
        else:
            dtypes = [getattr(X, "dtype", None)]
        if dtypes and all(d == np.float32 for d in dtypes):
            return np.float32
        return np.float64

    def _read(self, X: Any, dtype: Any, reset: bool) -> Sequences:
        """``X`` validated as the estimators read it (layout, feature names, checks)."""
        if reset:
            self._channels_first = bool(self.channels_first)
            message = layout_warning(X, self._channels_first, type(self).__name__)
            if message is not None:
                warnings.warn(message, UserWarning, stacklevel=3)
        if not isinstance(X, (list, tuple)):
            _check_feature_names(self, X, reset=reset)
        return check_sequences(to_batch_first(X, self._channels_first), dtype=dtype,
                               estimator=self)

    def fit(self, X: Any, y: Any = None) -> SequenceScaler:
        """Compute the mean and standard deviation of each feature.

        Parameters
        ----------
        X : array-like, list of array-like or DataFrame
            Sequences, in any form the estimators take (read as
            ``channels_first`` says).
        y : None
            Ignored.

        Returns
        -------
        self : SequenceScaler

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import SequenceScaler
        >>> SequenceScaler().fit(np.arange(12.0).reshape(2, 3, 2)).scale_.round(3)
        array([3.416, 3.416])
        """
        Xs = self._read(X, np.float64, reset=True)
        steps = Xs.steps()
        self.n_features_in_ = Xs.dense.shape[1] if Xs.from_2d else Xs.n_features
        self._table = Xs.from_2d
        self.n_steps_seen_ = int(steps.shape[0])
        mean = steps.mean(axis=0)
        self.mean_ = mean if self.with_mean else np.zeros_like(mean)
        scale = np.ones_like(mean)
        if self.with_std:
            scale = steps.std(axis=0)
            tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
            scale[scale < tiny] = 1.0
        self.scale_ = scale
        return self

    def _check(self, X: Any) -> Sequences:
        check_is_fitted(self, "scale_")
        Xs = self._read(X, self._dtype(X), reset=False)
        name = type(self).__name__
        if Xs.from_2d and self._table:
            if Xs.dense.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {Xs.dense.shape[1]} features, but {name} is expecting "
                    f"{self.n_features_in_} features as input (a 2D X is a table whose "
                    "columns are time steps)."
                )
        elif Xs.n_features != self.mean_.shape[0]:
            raise ValueError(
                f"X has {Xs.n_features} features per time step, but {name} was fitted "
                f"with {self.mean_.shape[0]}."
            )
        return Xs

    def _apply(self, X: Any, forward: bool) -> Any:
        Xs = self._check(X)
        steps = Xs.steps()
        if _shares(Xs, X) or not steps.flags.writeable:
            steps = steps.copy()
        mean = self.mean_.astype(steps.dtype)
        scale = self.scale_.astype(steps.dtype)
        if forward:
            steps -= mean
            steps /= scale
        else:
            steps *= scale
            steps += mean
        if Xs.from_panel:  # the panel back, its rows in their order
            return _panel_like(X, steps, Xs.rows)
        channels_first = self._channels_first
        if Xs.dense is not None:
            dense = steps.reshape(Xs.dense.shape)
            if Xs.from_2d:
                return dense[:, :, 0]
            if Xs.as_list:
                return [_like(a, x, channels_first) for a, x in zip(dense, X, strict=True)]
            return np.ascontiguousarray(dense.transpose(0, 2, 1)) if channels_first else dense
        out = [steps[a:b] for a, b in zip(Xs.offsets[:-1], Xs.offsets[1:], strict=True)]
        return [_like(a, x, channels_first) for a, x in zip(out, X, strict=True)]

    def transform(self, X: Any, copy: bool | None = None) -> Any:
        """Standardize ``X``; the result has the form of ``X`` (input never modified).

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences with the fitted number of features.
        copy : None
            Ignored: the input is never modified.

        Returns
        -------
        X_scaled : ndarray or list of ndarray

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import SequenceScaler
        >>> X = np.arange(12.0).reshape(2, 3, 2)
        >>> Z = SequenceScaler().fit(X).transform(X)
        >>> Z.shape, bool(np.allclose(Z.reshape(-1, 2).mean(axis=0), 0))
        ((2, 3, 2), True)
        """
        return self._apply(X, forward=True)

    def inverse_transform(self, X: Any, copy: bool | None = None) -> Any:
        """Undo :meth:`transform`.

        Parameters
        ----------
        X : array-like or list of array-like
            Standardized sequences.
        copy : None
            Ignored: the input is never modified.

        Returns
        -------
        X_original : ndarray or list of ndarray

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import SequenceScaler
        >>> X = np.arange(12.0).reshape(2, 3, 2)
        >>> scaler = SequenceScaler().fit(X)
        >>> bool(np.allclose(scaler.inverse_transform(scaler.transform(X)), X))
        True
        """
        return self._apply(X, forward=False)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _shares(Xs: Sequences, X: Any) -> bool:
    """Whether the validated storage may be the caller's own array (then copy first)."""
    if Xs.from_panel:
        return False  # a panel's steps are always gathered into a new array
    store = Xs.dense if Xs.dense is not None else Xs.values
    if isinstance(X, np.ndarray):
        return np.shares_memory(store, X)
    if isinstance(X, (list, tuple)):
        return any(isinstance(x, np.ndarray) and np.shares_memory(store, x) for x in X)
    if hasattr(X, "to_numpy"):  # a DataFrame: its blocks may be the storage
        return True
    return False


def _like(a: np.ndarray, original: Any, channels_first: bool) -> np.ndarray:
    """``a`` shaped as the sequence it came from (1D univariate sequences stay 1D,
    channels-first ones channels-first)."""
    if np.ndim(original) == 1:
        return a[:, 0]
    return np.ascontiguousarray(a.T) if channels_first else a


def _panel_like(X: Any, steps: np.ndarray, rows: np.ndarray) -> Any:
    """A DataFrame with ``X``'s index and columns holding ``steps`` (stored at ``rows``)."""
    import pandas as pd  # X is a pandas object

    values = np.empty_like(steps)
    values[rows] = steps
    if getattr(X, "ndim", 2) == 1:  # a Series: one feature
        return pd.Series(values[:, 0], index=X.index, name=X.name)
    return pd.DataFrame(values, index=X.index, columns=X.columns)
