"""Input validation for the estimators: sequences in, padded mini-batches out.

Accepted forms of ``X`` (public arrays are batch-first):

- a 3D array ``(n_samples, n_timesteps, n_features)``;
- a 2D array ``(n_samples, n_timesteps)``: univariate series, one feature;
- a list of 2D arrays ``(n_timesteps_i, n_features)`` (or 1D arrays
  ``(n_timesteps_i,)``, univariate) of different lengths: a ragged batch.
  A list of arrays is a list of sequences even when their lengths are equal
  (nested Python lists are read as an array);
- a ``pandas.DataFrame`` with a two-level ``(instance, time)`` row
  MultiIndex (sktime's panel layout): one sequence per instance, in the order
  the instances first appear, its rows (in their order) the time steps and the
  columns the features; a ragged batch when the instances' lengths differ
  (:mod:`fastlstm.train.panels`).

A ragged batch is stored packed (all steps of all sequences in one 2D array
plus offsets) and padded only per mini-batch.  Mini-batches group sequences of
similar length (see :func:`length_batches`) so that little time is spent on
padding; the layer gets the true ``lengths`` and ignores the padded steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils import check_array

from fastlstm.train.panels import _check_panel, is_panel
from fastlstm.train.sequences import Sequences, _estimator_name

__all__ = [
    "check_label_types",
    "check_sequences",
    "check_sequence_targets",
]

_SHAPE_HELP = (
    "Expected a 3D array (n_samples, n_timesteps, n_features), a 2D array "
    "(n_samples, n_timesteps) of univariate series, a list of 2D arrays "
    "(n_timesteps_i, n_features), or a DataFrame with an (instance, time) MultiIndex"
)


def _is_ragged_list(X: Any) -> bool:
    """True for a list/tuple of 1D or 2D array-likes whose shapes differ.

    Items of one shape make an ordinary array; items of different shapes
    that are not 1D or 2D are an error.
    """
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    shapes = []
    for x in X:
        if np.isscalar(x) or x is None:
            return False
        shapes.append(np.shape(x))
    if len(set(shapes)) == 1:
        return False
    for i, s in enumerate(shapes):
        if len(s) not in (1, 2):
            raise ValueError(f"{_SHAPE_HELP}; got a list whose item X[{i}] has shape {s}.")
    return True


def _is_list_of_arrays(X: Any) -> bool:
    """True for a list/tuple of 1D or 2D arrays (anything with ``ndim``): one sequence each.

    Such a list means "these sequences" whether or not their lengths happen
    to be equal; nested Python lists stay array-likes (a table of rows).
    """
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    return all(getattr(x, "ndim", None) in (1, 2) and not hasattr(x, "toarray") for x in X)


def check_sequences(
    X: Any,
    *,
    dtype: Any = np.float32,
    estimator: Any = None,
    input_name: str = "X",
) -> Sequences:
    """Validate ``X`` and convert it to :class:`Sequences` of ``dtype``.

    Parameters
    ----------
    X : array-like, list of array-like or DataFrame
        A 3D array ``(n_samples, n_timesteps, n_features)``, a 2D array
        ``(n_samples, n_timesteps)`` of univariate series, a list of 2D
        arrays ``(n_timesteps_i, n_features)`` (1D arrays: univariate), or
        a panel: a DataFrame with an ``(instance, time)`` row MultiIndex, one
        sequence per instance in order of first appearance.
    dtype : dtype, default=np.float32
        The element type of the result (one copy at most).
    estimator : estimator instance or str, default=None
        Named in error messages.
    input_name : str, default="X"
        Named in error messages.

    Returns
    -------
    sequences : Sequences

    Raises
    ------
    ValueError
        For a 1D or >3D array, no samples, no time steps or no features,
        NaN or infinite values, sequences with different feature counts, a
        DataFrame whose row index has more than two levels.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.data import check_sequences
    >>> s = check_sequences(np.zeros((4, 10)))         # 4 univariate series
    >>> s.n_samples, s.n_features, s.lengths.tolist()
    (4, 1, [10, 10, 10, 10])
    >>> s = check_sequences([np.ones((3, 2)), np.ones((5, 2))])   # ragged
    >>> s.is_ragged, s.lengths.tolist()
    (True, [3, 5])
    >>> x, lengths = s.padded([0, 1])
    >>> x.shape, lengths.tolist()
    ((2, 5, 2), [3, 5])
    >>> import pandas as pd
    >>> index = pd.MultiIndex.from_tuples([("a", 0), ("a", 1), ("b", 0)])
    >>> s = check_sequences(pd.DataFrame({"f0": [1, 2, 3], "f1": [4, 5, 6]}, index=index))
    >>> s.lengths.tolist(), s.n_features                   # a panel: one per instance
    ([2, 1], 2)
    """
    name = _estimator_name(estimator)
    dtype = np.dtype(dtype)
    if is_panel(X):
        return _check_panel(X, dtype, estimator, input_name)
    if _is_list_of_arrays(X) or _is_ragged_list(X):
        return _check_ragged(X, dtype, name, input_name)

    if isinstance(X, (list, tuple)) and len(X) == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is required "
            f"by {name}."
        )
    ndim = None
    if not hasattr(X, "toarray"):  # sparse input is refused by check_array below
        try:
            ndim = np.ndim(X)
        except (TypeError, ValueError):
            ndim = None  # e.g. nested lists of uneven depth: check_array explains
    if ndim is not None and ndim < 2:
        raise ValueError(
            f"{_SHAPE_HELP}; got a {ndim}D array instead. Reshape your data using "
            f"{input_name}.reshape(1, -1) if it holds a single univariate series, or "
            f"{input_name}.reshape(-1, 1) if each sample is a single time step."
        )
    if ndim is not None and ndim > 3:
        raise ValueError(f"{_SHAPE_HELP}; got a {ndim}D array instead.")

    arr = check_array(
        X,
        accept_sparse=False,
        dtype=dtype,
        order="C",
        ensure_2d=True,
        allow_nd=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        estimator=estimator,
        input_name=input_name,
    )
    if arr.ndim == 2:
        return Sequences(dense=arr.reshape(arr.shape[0], arr.shape[1], 1), from_2d=True)
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(
            f"Found array with shape {arr.shape} while a minimum of 1 time step and 1 "
            f"feature is required by {name}."
        )
    return Sequences(dense=arr)


def _check_ragged(X: Sequence[Any], dtype: np.dtype, name: str, input_name: str) -> Sequences:
    seqs = []
    n_features = None
    for i, x in enumerate(X):
        if hasattr(x, "toarray"):
            raise TypeError(
                f"Sparse data was passed for {input_name}[{i}], but dense data is "
                f"required by {name}."
            )
        a = np.asarray(x)
        if a.dtype.kind == "c":
            raise ValueError(f"Complex data not supported in {input_name}[{i}].")
        try:
            a = a.astype(dtype, copy=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{input_name}[{i}] cannot be converted to {dtype.name}: {exc}"
            ) from exc
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.shape[0] == 0:
            raise ValueError(
                f"{input_name}[{i}] has 0 time steps, while a minimum of 1 is required "
                f"by {name}."
            )
        if n_features is None:
            n_features = a.shape[1]
            if n_features == 0:
                raise ValueError(f"{input_name}[0] has 0 features per time step.")
        elif a.shape[1] != n_features:
            hint = ""
            if all(np.ndim(x) == 2 for x in X) and len({np.shape(x)[0] for x in X}) == 1:
                hint = (
                    " The arrays have equal numbers of rows and different numbers of "
                    "columns: arrays (n_channels, n_timepoints_i), as aeon and sktime lay "
                    "out series of different lengths, are read with channels_first=True "
                    "(and arrays (n_timesteps_i, n_features) with channels_first=False)."
                )
            raise ValueError(
                f"All sequences in {input_name} must have the same number of features; "
                f"{input_name}[0] has {n_features} and {input_name}[{i}] has "
                f"{a.shape[1]}.{hint}"
            )
        seqs.append(a)
    lengths = np.array([len(a) for a in seqs], dtype=np.intp)
    if np.all(lengths == lengths[0]):  # a list of equal-length sequences: store dense
        dense = np.stack(seqs)
        check_array(dense.reshape(len(seqs), -1), dtype=dtype, input_name=input_name,
                    estimator=name, copy=False)
        return Sequences(dense=dense, as_list=True)
    offsets = np.zeros(len(seqs) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(seqs, axis=0)
    # one finiteness check for the whole batch, with scikit-learn's message
    check_array(values, dtype=dtype, input_name=input_name,
                estimator=name, copy=False)
    return Sequences(values=np.ascontiguousarray(values), offsets=offsets, as_list=True)


def check_sequence_targets(
    y: Any,
    X: Sequences,
    *,
    dtype: Any = np.float64,
    input_name: str = "y",
) -> Sequences:
    """Validate per-time-step targets ``y`` against the sequences ``X``.

    Parameters
    ----------
    y : array-like or list of array-like
        ``(n_samples, n_timesteps)`` or ``(n_samples, n_timesteps, n_outputs)``
        for dense ``X``; for a ragged ``X``, a list of arrays
        ``(n_timesteps_i,)`` or ``(n_timesteps_i, n_outputs)``.
    X : Sequences
        The validated inputs, whose lengths ``y`` must match.
    dtype : dtype, default=np.float64
        Element type of the result.
    input_name : str, default="y"
        Named in error messages.

    Returns
    -------
    targets : Sequences
        One target vector per time step, with ``X``'s lengths.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.data import check_sequences, check_sequence_targets
    >>> X = check_sequences([np.ones((3, 2)), np.ones((5, 2))])
    >>> Y = check_sequence_targets([np.arange(3), np.arange(5)], X)
    >>> Y.n_features, Y.lengths.tolist()
    (1, [3, 5])
    """
    if X.is_ragged:
        if not isinstance(y, (list, tuple)) and not (
            hasattr(y, "ndim") and y.ndim >= 2 and y.dtype != object
        ):
            raise ValueError(
                f"For ragged X, {input_name} must be a list of arrays (n_timesteps_i,) or "
                f"(n_timesteps_i, n_outputs), one per sequence."
            )
        if len(y) != X.n_samples:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{X.n_samples}, {len(y)}]"
            )
        ys = [np.asarray(a) for a in y]
        if any(a.ndim not in (1, 2) for a in ys):
            raise ValueError(f"Each target sequence in {input_name} must be 1D or 2D.")
        ys = [a.reshape(-1, 1) if a.ndim == 1 else a for a in ys]
        widths = {a.shape[1] for a in ys}
        if len(widths) != 1:
            raise ValueError(f"All target sequences in {input_name} must have the same width.")
        bad = [i for i, a in enumerate(ys) if len(a) != X.lengths[i]]
        if bad:
            i = bad[0]
            raise ValueError(
                f"{input_name}[{i}] has {len(ys[i])} time steps but X[{i}] has "
                f"{X.lengths[i]}."
            )
        values = check_array(np.concatenate(ys, axis=0), dtype=dtype, input_name=input_name)
        return Sequences(values=values, offsets=X.offsets.copy(), as_list=True)

    arr = check_array(y, dtype=dtype, ensure_2d=False, allow_nd=True, input_name=input_name,
                      copy=True)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"With sequence_output=True, {input_name} must have shape (n_samples, "
            f"n_timesteps) or (n_samples, n_timesteps, n_outputs); got {arr.shape}."
        )
    if arr.shape[0] != X.n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{X.n_samples}, {arr.shape[0]}]"
        )
    if arr.shape[1] != X.dense.shape[1]:
        raise ValueError(
            f"{input_name} has {arr.shape[1]} time steps but X has {X.dense.shape[1]}."
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return Sequences(dense=np.ascontiguousarray(arr))


def check_label_types(y: Any, input_name: str = "y") -> None:
    """Refuse class labels that mix strings and numbers.

    NumPy would silently turn ``[0, "a"]`` into the strings ``["0", "a"]``,
    so that label 0 could never be predicted as the number 0.

    Examples
    --------
    >>> from fastlstm.train.data import check_label_types
    >>> check_label_types(["a", "b"]); check_label_types([0, 1.5])
    >>> check_label_types([0, "a"])
    Traceback (most recent call last):
    ...
    ValueError: y mixes strings and numbers (for example 'a' and 0); use one type for all labels.
    """
    dtype = getattr(y, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "O") != "O":
        return  # one type already (numeric, or all strings)
    try:
        values = np.asarray(y, dtype=object).ravel()
    except (TypeError, ValueError):
        return  # check_array explains what is wrong
    text = number = None
    for v in values:
        if isinstance(v, (str, bytes)):
            text = v if text is None else text
        elif isinstance(v, (int, float, np.number, np.bool_)):
            number = v if number is None else number
        if text is not None and number is not None:
            raise ValueError(
                f"{input_name} mixes strings and numbers (for example {text!r} and "
                f"{number!r}); use one type for all labels."
            )
