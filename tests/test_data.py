"""Input validation and length bucketing (fastlstm.train.data)."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastlstm.train.data import check_sequence_targets, check_sequences
from fastlstm.train.sequences import Sequences, length_batches


def test_3d_array_converted_once_to_dtype():
    X = np.random.RandomState(0).normal(size=(4, 5, 3))
    s = check_sequences(X, dtype=np.float32)
    assert not s.is_ragged and not s.from_2d and not s.as_list
    assert s.dense.dtype == np.float32 and s.dense.flags.c_contiguous
    assert (s.n_samples, s.n_features) == (4, 3)
    np.testing.assert_array_equal(s.lengths, [5, 5, 5, 5])
    np.testing.assert_allclose(s.dense, X, rtol=1e-6)
    # already the right dtype and layout: no copy
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    assert np.shares_memory(check_sequences(X32).dense, X32)


def test_2d_array_is_univariate_series():
    X = np.arange(12.0).reshape(3, 4)
    s = check_sequences(X)
    assert s.from_2d and s.n_features == 1
    assert s.dense.shape == (3, 4, 1)
    np.testing.assert_array_equal(s.dense[1, :, 0], [4, 5, 6, 7])


def test_nested_lists_are_arrays():
    s = check_sequences([[1, 2, 3], [4, 5, 6]])
    assert s.dense.shape == (2, 3, 1) and s.from_2d
    s = check_sequences([np.ones((3, 2)), np.zeros((3, 2))])  # same shapes: dense
    assert not s.is_ragged and s.dense.shape == (2, 3, 2)


def test_ragged_list_packed_and_padded():
    a, b, c = np.ones((3, 2)), 2 * np.ones((5, 2)), 3 * np.ones((1, 2))
    s = check_sequences([a, b, c], dtype=np.float64)
    assert s.is_ragged and s.as_list
    np.testing.assert_array_equal(s.lengths, [3, 5, 1])
    assert s.values.shape == (9, 2)
    x, lengths = s.padded([2, 0, 1])
    assert x.shape == (3, 5, 2) and x.flags.c_contiguous
    np.testing.assert_array_equal(lengths, [1, 3, 5])
    np.testing.assert_array_equal(x[0, :1], c)
    assert np.all(x[0, 1:] == 0) and np.all(x[1, 3:] == 0)
    np.testing.assert_array_equal(x[2], b)
    # a batch of equal lengths needs no lengths
    x, lengths = s.padded([1])
    assert lengths is None and x.shape == (1, 5, 2)
    for got, want in zip(s.to_list(), [a, b, c], strict=True):
        np.testing.assert_array_equal(got, want)


def test_ragged_univariate_1d_sequences():
    s = check_sequences([np.arange(3), np.arange(6)])
    assert s.is_ragged and s.n_features == 1
    np.testing.assert_array_equal(s.lengths, [3, 6])


def test_take_and_unpad_round_trip():
    rng = np.random.RandomState(0)
    seqs = [rng.normal(size=(n, 2)) for n in (4, 2, 7, 3)]
    s = check_sequences(seqs, dtype=np.float64)
    sub = s.take([3, 0])
    np.testing.assert_array_equal(sub.lengths, [3, 4])
    np.testing.assert_array_equal(sub.to_list()[1], seqs[0])
    out = Sequences.empty_like(s, 2, np.float64)
    for idx in ([0, 2], [1, 3]):
        x, _ = s.padded(idx)
        out.unpad(x, idx)
    for got, want in zip(out.to_list(), seqs, strict=True):
        np.testing.assert_array_equal(got, want)


def test_input_not_modified():
    X = np.random.RandomState(0).normal(size=(3, 4, 2)).astype(np.float32)
    X0 = X.copy()
    s = check_sequences(X)
    s.take([0, 1])
    np.testing.assert_array_equal(X, X0)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(5), "got a 1D array instead. Reshape your data"),
        (np.zeros((2, 3, 4, 5)), "got a 4D array"),
        (np.zeros((0, 4)), "0 sample"),
        (np.zeros((0, 4, 2)), "0 sample"),
        ([], "0 sample"),
        (np.zeros((3, 0)), "0 feature"),
        (np.zeros((3, 0, 2)), "minimum of 1 time step"),
        (np.zeros((3, 2, 0)), "minimum of 1 time step and 1 feature"),
        (np.array([[1.0, np.nan]]), "Input X contains NaN"),
        (np.array([[[1.0], [np.inf]]]), "Input X contains infinity"),
        ([np.ones((2, 3)), np.array([[1.0, 2, np.nan]])], "Input X contains NaN"),
        ([np.ones((2, 3)), np.ones((4, 2))], r"X\[0\] has 3 and X\[1\] has 2"),
        ([np.ones((2, 3)), np.ones((0, 3))], r"X\[1\] has 0 time steps"),
        ([np.ones((2, 3)), np.ones((4, 3, 1))], "Expected a 3D array"),
        (np.array([["a", "b"]]), "could not convert|Unable to convert|dtype"),
        (np.ones((2, 3)) + 1j, "Complex data not supported"),
        ([np.ones(2), np.ones(3) + 1j], "Complex data not supported"),
    ],
)
def test_errors(X, match):
    with pytest.raises(ValueError, match=match):
        check_sequences(X, estimator="Est")


def test_sparse_refused():
    with pytest.raises(TypeError, match="[Ss]parse"):
        check_sequences(sp.csr_matrix(np.ones((3, 4))))


def test_length_batches_cover_everything_once():
    rng = np.random.RandomState(0)
    lengths = rng.randint(1, 100, size=103)
    batches = length_batches(lengths, 16, np.random.RandomState(1))
    assert [len(b) for b in batches].count(16) == 6
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(103))


def test_length_batches_keep_padding_small():
    rng = np.random.RandomState(0)
    lengths = rng.randint(1, 200, size=1000)
    batches = length_batches(lengths, 32, np.random.RandomState(0))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded / lengths.sum() < 1.1  # random batches would waste ~90%
    random_padded = sum(32 * lengths[i:i + 32].max() for i in range(0, 1000, 32))
    assert random_padded / lengths.sum() > 1.5


def test_length_batches_deterministic_and_shuffled():
    lengths = np.full(50, 7)
    a = length_batches(lengths, 10, np.random.RandomState(3))
    b = length_batches(lengths, 10, np.random.RandomState(3))
    c = length_batches(lengths, 10, np.random.RandomState(4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    # without rng: sorted by length, original order among equals
    np.testing.assert_array_equal(np.concatenate(length_batches(lengths, 10)), np.arange(50))


def test_sequence_targets_dense_and_ragged():
    X = check_sequences(np.zeros((3, 4, 2)))
    Y = check_sequence_targets(np.ones((3, 4)), X)
    assert Y.dense.shape == (3, 4, 1) and Y.dense.dtype == np.float64
    Y = check_sequence_targets(np.ones((3, 4, 2)), X)
    assert Y.n_features == 2
    Xr = check_sequences([np.zeros((2, 1)), np.zeros((5, 1))])
    Yr = check_sequence_targets([np.arange(2), np.arange(5)], Xr)
    np.testing.assert_array_equal(Yr.lengths, [2, 5])
    np.testing.assert_array_equal(Yr.values[:, 0], [0, 1, 0, 1, 2, 3, 4])


def test_sequence_targets_are_copied():
    X = check_sequences(np.zeros((2, 3, 1)))
    y = np.ones((2, 3))
    Y = check_sequence_targets(y, X)
    Y.dense[...] = 5
    assert np.all(y == 1)


@pytest.mark.parametrize(
    "y, match",
    [
        (np.ones((3, 5)), "5 time steps but X has 4"),
        (np.ones((2, 4)), "inconsistent numbers of samples"),
        (np.ones(3), "must have shape"),
        (np.array([[1.0, np.nan, 1, 1]] * 3), "NaN"),
    ],
)
def test_sequence_target_errors_dense(y, match):
    X = check_sequences(np.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match=match):
        check_sequence_targets(y, X)


def test_sequence_target_errors_ragged():
    X = check_sequences([np.zeros((2, 1)), np.zeros((5, 1))])
    with pytest.raises(ValueError, match=r"y\[1\] has 4 time steps but X\[1\] has 5"):
        check_sequence_targets([np.zeros(2), np.zeros(4)], X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        check_sequence_targets([np.zeros(2)], X)
    with pytest.raises(ValueError, match="list of arrays"):
        check_sequence_targets(np.zeros(7), X)


def test_channel_major_arrays_read_batch_first_get_a_hint():
    X = [np.ones((6, 40)), np.ones((6, 55))]  # (n_channels, n_timepoints_i)
    with pytest.raises(ValueError, match=r"X\[0\] has 40 and X\[1\] has 55.*channels_first=True"):
        check_sequences(X)
    with pytest.raises(ValueError, match=r"X\[0\] has 3 and X\[1\] has 2\.$"):  # no hint
        check_sequences([np.ones((2, 3)), np.ones((4, 2))])
