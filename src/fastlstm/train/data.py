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
  columns the features; a ragged batch when the instances' lengths differ.

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

__all__ = [
    "Sequences",
    "check_label_types",
    "check_panel_targets",
    "check_sequences",
    "check_sequence_targets",
    "is_panel",
    "length_batches",
]

_SHAPE_HELP = (
    "Expected a 3D array (n_samples, n_timesteps, n_features), a 2D array "
    "(n_samples, n_timesteps) of univariate series, a list of 2D arrays "
    "(n_timesteps_i, n_features), or a DataFrame with an (instance, time) MultiIndex"
)


class Sequences:
    """A validated batch of sequences, dense or ragged.

    Build it with :func:`check_sequences`; the constructor does no checking.

    Parameters
    ----------
    dense : ndarray of shape (n_samples, n_timesteps, n_features) or None
        The data when every sequence has the same length.
    values : ndarray of shape (total_steps, n_features) or None
        The steps of all sequences one after another, when ragged.
    offsets : ndarray of shape (n_samples + 1,) or None
        Sequence ``i`` is ``values[offsets[i]:offsets[i + 1]]``.
    as_list : bool
        Whether the input was a list of sequences (outputs per time step are
        then returned as a list too).
    from_2d : bool
        Whether the input was a 2D array of univariate series (a table whose
        columns are time steps).
    rows : ndarray of shape (total_steps,) or None
        For a panel (a DataFrame with an ``(instance, time)`` MultiIndex), the
        row of the DataFrame each stored time step came from (steps in storage
        order); None for other input.

    Attributes
    ----------
    lengths : ndarray of shape (n_samples,)
        Number of time steps of each sequence.
    n_features : int
        Features per time step.
    """

    def __init__(
        self,
        dense: np.ndarray | None = None,
        values: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
        as_list: bool = False,
        from_2d: bool = False,
        rows: np.ndarray | None = None,
    ) -> None:
        self.dense = dense
        self.values = values
        self.offsets = offsets
        self.as_list = as_list
        self.from_2d = from_2d
        self.rows = rows
        if dense is not None:
            self.lengths = np.full(dense.shape[0], dense.shape[1], dtype=np.intp)
            self.n_features = dense.shape[2]
        else:
            self.lengths = np.diff(offsets).astype(np.intp)
            self.n_features = values.shape[1]

    @property
    def n_samples(self) -> int:
        """Number of sequences."""
        return len(self.lengths)

    @property
    def is_ragged(self) -> bool:
        """True when the sequences are stored packed (lengths may differ)."""
        return self.dense is None

    @property
    def from_panel(self) -> bool:
        """True when the input was a DataFrame with an ``(instance, time)`` MultiIndex."""
        return self.rows is not None

    @property
    def dtype(self) -> np.dtype:
        """Element type of the stored data."""
        return (self.dense if self.dense is not None else self.values).dtype

    def __len__(self) -> int:
        return self.n_samples

    def take(self, indices: Any) -> Sequences:
        """Return the sequences at ``indices`` (a copy), in that order."""
        indices = np.asarray(indices, dtype=np.intp)
        if self.dense is not None:
            return Sequences(dense=self.dense[indices], as_list=self.as_list)
        lengths = self.lengths[indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.intp)
        np.cumsum(lengths, out=offsets[1:])
        values = np.empty((offsets[-1], self.n_features), dtype=self.values.dtype)
        for j, i in enumerate(indices):
            values[offsets[j]:offsets[j + 1]] = self.values[self.offsets[i]:self.offsets[i + 1]]
        return Sequences(values=values, offsets=offsets, as_list=self.as_list)

    def padded(self, indices: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Right-padded batch of the sequences at ``indices``.

        Returns
        -------
        x : ndarray of shape (len(indices), max_length, n_features)
            C-contiguous, zeros past each sequence's end.
        lengths : ndarray of shape (len(indices),) or None
            None when every sequence in the batch has the full length.
        """
        indices = np.asarray(indices, dtype=np.intp)
        if self.dense is not None:
            return np.ascontiguousarray(self.dense[indices]), None
        lengths = self.lengths[indices]
        steps = int(lengths.max())
        x = np.zeros((len(indices), steps, self.n_features), dtype=self.values.dtype)
        for j, i in enumerate(indices):
            x[j, : lengths[j]] = self.values[self.offsets[i]:self.offsets[i + 1]]
        if np.all(lengths == steps):
            return x, None
        return x, lengths

    def unpad(self, padded: np.ndarray, indices: Any) -> None:
        """Inverse of :meth:`padded` for values stored in this object, in place."""
        indices = np.asarray(indices, dtype=np.intp)
        if self.dense is not None:
            self.dense[indices] = padded
            return
        for j, i in enumerate(indices):
            n = self.lengths[i]
            self.values[self.offsets[i]:self.offsets[i + 1]] = padded[j, :n]

    def to_list(self) -> list[np.ndarray]:
        """The sequences as a list of 2D arrays (views into the storage)."""
        if self.dense is not None:
            return list(self.dense)
        return [self.values[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    def steps(self) -> np.ndarray:
        """All time steps of all sequences, shape (total_steps, n_features)."""
        if self.dense is not None:
            return self.dense.reshape(-1, self.n_features)
        return self.values

    @classmethod
    def empty_like(cls, other: Sequences, n_features: int, dtype: Any) -> Sequences:
        """Zero-filled sequences with ``other``'s lengths and ``n_features`` features."""
        if other.dense is not None:
            return cls(
                dense=np.zeros((other.n_samples, other.lengths[0] if other.n_samples else 0,
                                n_features), dtype=dtype),
                as_list=other.as_list,
            )
        values = np.zeros((other.offsets[-1], n_features), dtype=dtype)
        return cls(values=values, offsets=other.offsets.copy(), as_list=other.as_list)


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


def is_panel(X: Any) -> bool:
    """True for a pandas DataFrame or Series whose row index has several levels.

    Such an object is a panel of series (sktime's ``pd-multiindex`` layout):
    it is never read as a table of rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastlstm.train.data import is_panel
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
    >>> from fastlstm.train.data import check_panel_targets, check_sequences
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


def _estimator_name(estimator: Any) -> str:
    if estimator is None:
        return "the estimator"
    return estimator if isinstance(estimator, str) else type(estimator).__name__


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


def length_batches(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.RandomState | None = None,
) -> list[np.ndarray]:
    """Split sample indices into mini-batches of similar sequence length.

    Sequences are ordered by length (ties broken at random when ``rng`` is
    given) and cut into consecutive batches, so padding inside a batch is
    small; with ``rng`` the order of the batches is shuffled too.  When all
    lengths are equal and ``rng`` is given this is a plain random split.

    Parameters
    ----------
    lengths : ndarray of shape (n_samples,)
        Length of each sequence.
    batch_size : int
        Largest batch; the last batch in length order may be smaller.
    rng : RandomState or None, default=None
        None gives a deterministic split (for prediction).

    Returns
    -------
    batches : list of ndarray of int
        Sample indices of each batch; together a permutation of ``range(n)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.data import length_batches
    >>> [b.tolist() for b in length_batches(np.array([5, 1, 4, 2]), 2)]
    [[1, 3], [2, 0]]
    """
    lengths = np.asarray(lengths)
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
    else:
        perm = rng.permutation(n)
        order = perm[np.argsort(lengths[perm], kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


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
