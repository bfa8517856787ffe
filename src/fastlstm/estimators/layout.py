"""Input layouts: channels-first input (aeon, sktime), and warnings for likely mix-ups.

The estimators read sequences batch-first and time-major within a sequence:
``(n_samples, n_timesteps, n_features)``.  aeon and sktime hand deep-learning
models ``(n_cases, n_channels, n_timepoints)``; read as it is, such an array
becomes ``n_channels`` time steps of ``n_timepoints`` features, which trains
without error and learns little.  ``channels_first=True`` transposes it (and
each ``(n_channels, n_timepoints_i)`` array of a list) on the way in.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fastlstm.train.panels import is_panel

__all__ = ["layout_warning", "to_batch_first", "warn_about_layout"]


def to_batch_first(X: Any, channels_first: bool) -> Any:
    """``X`` in the estimators' layout: channels-first input transposed, other input as is.

    A 2D table (univariate series) and a panel DataFrame (rows are time steps)
    read the same either way.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.estimators.layout import to_batch_first
    >>> to_batch_first(np.zeros((4, 3, 100)), channels_first=True).shape
    (4, 100, 3)
    >>> [x.shape for x in to_batch_first([np.zeros((3, 7)), np.zeros((3, 5))], True)]
    [(7, 3), (5, 3)]
    """
    if not channels_first:
        return X
    if isinstance(X, (list, tuple)) and X and all(_ndim(x) in (1, 2) for x in X):
        # aeon's unequal-length collections: one (n_channels, n_timepoints_i) per case
        return [np.asarray(x).T if _ndim(x) == 2 else x for x in X]
    if _ndim(X) == 3:
        return np.swapaxes(np.asarray(X), 1, 2)
    return X  # 2D tables are univariate series either way; other shapes fail later


def _ndim(x: Any) -> int | None:
    """Dimensions of an array-like (None when it is not one: validation explains)."""
    ndim = getattr(x, "ndim", None)
    if isinstance(ndim, int):
        return ndim
    try:
        return np.asarray(x).ndim  # array-likes that only convert (``__array__``)
    except (TypeError, ValueError):
        return None


def _read_shapes(X: Any) -> tuple[str, list[tuple[int, int]]] | None:
    """("array" or "list", the (time steps, features) of each sequence read batch-first).

    None for input whose layout is not in question (2D tables, panels, 1D
    sequences) or whose shape cannot be read without converting it.
    """
    try:
        if isinstance(X, (list, tuple)):
            shapes = [np.shape(x) for x in X]
            if not shapes or any(len(s) != 2 for s in shapes):
                return None
            kind = "list"
        else:
            shape = getattr(X, "shape", None)
            if shape is None or len(shape) != 3:
                return None
            shapes, kind = [tuple(shape[1:])], "array"
        return kind, [(int(a), int(b)) for a, b in shapes]
    except (TypeError, ValueError):
        return None  # e.g. nested lists of uneven depth: validation explains


def layout_warning(X: Any, channels_first: bool, estimator: str) -> str | None:
    """The warning for an ``X`` whose shape makes channels-first the likelier reading.

    Read batch-first, each sequence is ``(n_timesteps, n_features)``.  Series
    are nearly always longer than they are wide, so a 3D ``X`` read as fewer
    time steps than features (or a list whose every array is read so) is
    probably aeon's and sktime's ``(n_cases, n_channels, n_timepoints)``.
    None when the layout looks right, when ``channels_first`` is set (the
    layout is then stated, not guessed), and for 2D input (univariate series
    either way).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.estimators.layout import layout_warning
    >>> print(layout_warning(np.zeros((40, 6, 100)), False, "LSTMClassifier"))
    X has shape (40, 6, 100): LSTMClassifier reads it as (n_samples, n_timesteps,
    n_features), 6 time steps of 100 features each, fewer time steps than features.
    If it is (n_cases, n_channels, n_timepoints), as aeon and sktime lay out series,
    pass channels_first=True.
    >>> layout_warning(np.zeros((40, 100, 6)), False, "LSTMClassifier") is None
    True
    >>> layout_warning(np.zeros((40, 6, 100)), True, "LSTMClassifier") is None
    True
    """
    found = None if channels_first else _read_shapes(X)
    if found is None:
        return None
    kind, read = found
    if not all(steps < features for steps, features in read):
        return None
    steps, features = read[0]
    if kind == "array":
        return (f"X has shape {tuple(int(v) for v in X.shape)}: {estimator} reads it as "
                f"(n_samples, n_timesteps, n_features), {steps} time steps of {features} "
                "features each, fewer time steps than features. If it is (n_cases, "
                "n_channels, n_timepoints), as aeon and sktime lay out series, pass "
                "channels_first=True.")
    return (f"X is a list of {len(read)} arrays that {estimator} reads as (n_timesteps_i, "
            f"n_features), each with fewer time steps than features (X[0]: {steps} time "
            f"steps of {features} features). If they are (n_channels, n_timepoints_i), as "
            "aeon and sktime lay out series, pass channels_first=True.")


def warn_about_layout(X: Any, channels_first: bool, estimator: str) -> None:
    """Warn at fit when ``X`` is probably not in the layout the estimator will read.

    Parameters
    ----------
    X : array-like, list of array-like or DataFrame
        The input as given to ``fit``.
    channels_first : bool
        How the estimator reads it.
    estimator : str
        Named in the warning.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from fastlstm.estimators.layout import warn_about_layout
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_about_layout(np.zeros((8, 2, 100)), False, "LSTMClassifier")
    >>> "channels_first=True" in str(w[0].message)
    True
    """
    shape = getattr(X, "shape", None)
    if hasattr(X, "columns") and shape is not None and len(shape) == 2:
        if is_panel(X):
            return  # a panel: rows are time steps, columns features
        warnings.warn(
            f"X is a 2D DataFrame: {estimator} reads each row as one univariate series "
            "whose time steps are the columns. Pass a 3D array (n_samples, n_timesteps, "
            "n_features), a list of sequences, or a DataFrame with an (instance, time) "
            "MultiIndex for several features per step.",
            UserWarning, stacklevel=4)
        return
    message = layout_warning(X, channels_first, estimator)
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=4)
