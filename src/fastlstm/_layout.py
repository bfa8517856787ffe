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

__all__ = ["to_batch_first", "warn_about_layout"]

# A 3D input with at most this many time steps ...
_FEW_STEPS = 2
# ... and at least this many features per step looks transposed.
_MANY_FEATURES = 10


def to_batch_first(X: Any, channels_first: bool) -> Any:
    """``X`` in the estimators' layout: channels-first input transposed, other input as is.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm._layout import to_batch_first
    >>> to_batch_first(np.zeros((4, 3, 100)), channels_first=True).shape
    (4, 100, 3)
    >>> [x.shape for x in to_batch_first([np.zeros((3, 7)), np.zeros((3, 5))], True)]
    [(7, 3), (5, 3)]
    """
    if not channels_first:
        return X
    if isinstance(X, (list, tuple)) and X and all(np.ndim(x) in (1, 2) for x in X):
        # aeon's unequal-length collections: one (n_channels, n_timepoints_i) per case
        return [np.asarray(x).T if np.ndim(x) == 2 else x for x in X]
    if np.ndim(X) == 3:
        return np.swapaxes(np.asarray(X), 1, 2)
    return X  # 2D tables are univariate series either way; other shapes fail later


def warn_about_layout(X: Any, channels_first: bool, estimator: str) -> None:
    """Warn at fit when ``X`` is probably not in the layout the estimator will read.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from fastlstm._layout import warn_about_layout
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_about_layout(np.zeros((8, 2, 100)), False, "LSTMClassifier")
    >>> "channels_first=True" in str(w[0].message)
    True
    """
    shape = getattr(X, "shape", None)
    if hasattr(X, "columns") and shape is not None and len(shape) == 2:
        warnings.warn(
            f"X is a 2D DataFrame: {estimator} reads each row as one univariate series "
            "whose time steps are the columns. Pass a 3D array (n_samples, n_timesteps, "
            "n_features) or a list of sequences for several features per step.",
            UserWarning, stacklevel=4)
        return
    if channels_first or shape is None or len(shape) != 3:
        return
    if shape[1] <= _FEW_STEPS and shape[2] >= _MANY_FEATURES:
        warnings.warn(
            f"X has shape {tuple(shape)}: {estimator} reads it as {shape[1]} time step(s) "
            f"of {shape[2]} features each. If it is (n_cases, n_channels, n_timepoints), "
            "as aeon and sktime lay out series, pass channels_first=True.",
            UserWarning, stacklevel=4)
