"""pandas panels: a DataFrame with an ``(instance, time)`` MultiIndex is one sequence per instance.

Such an object is sktime's ``pd-multiindex`` layout; it is never read as a
table of rows, and targets given one per row of it are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import check_array

from fastlstm.train.sequences import Sequences, _estimator_name

__all__ = ["check_panel_targets", "is_panel"]


def is_panel(X: Any) -> bool:
    """True for a pandas DataFrame or Series whose row index has several levels.

    Such an object is a panel of series (sktime's ``pd-multiindex`` layout):
    it is never read as a table of rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastlstm.train.panels import is_panel
    >>> index = pd.MultiIndex.from_product([[0, 1], [0, 1, 2]], names=["instance", "time"])
    >>> is_panel(pd.DataFrame({"a": range(6)}, index=index)), is_panel(pd.DataFrame({"a": [1]}))
    (True, False)
    """
    nlevels = getattr(getattr(X, "index", None), "nlevels", 1)
    return (isinstance(nlevels, int) and nlevels > 1 and getattr(X, "ndim", None) in (1, 2)
            and hasattr(X, "to_numpy"))


def _check_panel(X: Any, dtype: np.dtype, estimator: Any, input_name: str) -> Sequences:
    """Sequences of a DataFrame with an ``(instance, time)`` MultiIndex: one per instance."""
    name = _estimator_name(estimator)
    index = X.index
    if index.nlevels != 2:
        raise ValueError(
            f"{input_name} is a DataFrame whose row index has {index.nlevels} levels; "
            f"{name} reads a panel with two, (instance, time): one sequence per instance, "
            "its rows the time steps and its columns the features. Combine the levels that "
            "identify a series into one, or pass a list of (n_timesteps_i, n_features) "
            f"arrays, e.g. [g.to_numpy() for _, g in {input_name}.groupby(level="
            f"{list(range(index.nlevels - 1))}, sort=False)]."
        )
    frame = X.to_frame() if getattr(X, "ndim", 2) == 1 else X  # a Series: one feature
    codes = np.asarray(index.codes[0], dtype=np.intp)
    if len(codes) and codes.min() < 0:
        raise ValueError(f"{input_name} has rows whose instance (first index level) is missing.")
    values = check_array(frame, dtype=dtype, ensure_2d=True, ensure_min_samples=1,
                         ensure_min_features=1, estimator=estimator, input_name=input_name)
    # instances in order of first appearance, each one's rows in their order
    present, first = np.unique(codes, return_index=True)
    rank = np.empty(int(present[-1]) + 1, dtype=np.intp)
    rank[present[np.argsort(first)]] = np.arange(len(present))
    instance = rank[codes]
    rows = np.argsort(instance, kind="stable")
    lengths = np.bincount(instance, minlength=len(present)).astype(np.intp)
    steps = values[rows]  # a copy in storage order, never the DataFrame's memory
    if np.all(lengths == lengths[0]):
        return Sequences(dense=steps.reshape(len(lengths), lengths[0], steps.shape[1]),
                         as_list=True, rows=rows)
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    return Sequences(values=steps, offsets=offsets, as_list=True, rows=rows)


def check_panel_targets(y: Any, X: Sequences, *, per_step: bool = False,
                        input_name: str = "y", x_name: str = "X") -> None:
    """Refuse targets of a panel ``X`` given per row rather than per instance.

    A panel with ``n`` instances and ``N`` rows holds ``n`` sequences, so a
    ``y`` of ``N`` entries (one per row, e.g. a column of the same DataFrame)
    is not one target per sequence.  Other ``X`` are not checked.

    Parameters
    ----------
    y : array-like
        The targets given with ``X``.
    X : Sequences
        The validated inputs.
    per_step : bool, default=False
        Whether ``y`` holds one target per time step (``sequence_output=True``).
    input_name, x_name : str, default="y", "X"
        Named in error messages.

    Raises
    ------
    ValueError
        For a ``y`` with one entry per row of a panel ``X`` (with ``per_step``:
        a ``y`` that is a panel itself or one array of all rows, rather than a
        list of one array per instance).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from fastlstm.train.data import check_sequences
    >>> from fastlstm.train.panels import check_panel_targets
    >>> index = pd.MultiIndex.from_product([[0, 1], [0, 1, 2]], names=["instance", "time"])
    >>> X = check_sequences(pd.DataFrame({"a": np.arange(6.0)}, index=index))
    >>> check_panel_targets([0, 1], X)           # one target per instance
    >>> check_panel_targets(np.arange(6), X)     # one per row
    Traceback (most recent call last):
    ...
    ValueError: y has 6 entries, one per row of the panel X, but X holds 2 sequences ...
    """
    if not X.from_panel or (per_step and isinstance(y, (list, tuple))):
        return
    try:
        n = len(y)
    except TypeError:
        return  # the estimator's own checks explain what is wrong
    if n != len(X.rows) or n == X.n_samples:
        return
    if per_step:
        raise ValueError(
            f"{input_name} has one entry per row of the panel {x_name}; per-step targets are "
            "a list of arrays (n_timesteps_i,) or (n_timesteps_i, n_outputs), one per "
            f"instance in the order the instances first appear in {x_name}'s index, e.g. "
            f"[g.to_numpy() for _, g in {input_name}.groupby(level=0, sort=False)]."
        )
    raise ValueError(
        f"{input_name} has {n} entries, one per row of the panel {x_name}, but {x_name} "
        f"holds {X.n_samples} sequences (one per instance, the first level of its index). "
        f"Pass one target per instance, in the order the instances first appear in "
        f"{x_name}'s index (for a {input_name} indexed like {x_name}: "
        f"{input_name}.groupby(level=0, sort=False).first())."
    )
