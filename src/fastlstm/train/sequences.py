"""A validated batch of sequences (dense or ragged) and its mini-batches by length."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Sequences", "length_batches"]


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
    >>> from fastlstm.train.sequences import length_batches
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


def _estimator_name(estimator: Any) -> str:
    if estimator is None:
        return "the estimator"
    return estimator if isinstance(estimator, str) else type(estimator).__name__
