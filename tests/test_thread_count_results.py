"""The thread count changes speed, never results: fits and passes bit for bit at any n_jobs.

The row chunks (shards) and the GEMM blocks are cut from the data's shape
alone (fastlstm.nn.plan), threads take whole chunks and blocks, and sums over
chunks are reduced in chunk order; so a fit on one thread and on several
gives the same model, bit for bit, in every cell, dtype and layout.  Shapes
come from the kernel variant's tile, so that every run has several chunks.
"""

import warnings

import numpy as np
import pytest

from fastlstm import GRU, LSTM, RNN, LSTMClassifier, LSTMRegressor
from fastlstm.nn.plan import (
    MAX_TILE_CHUNKS,
    MIN_CHUNK_ROWS,
    chunk_of_rows,
    gemm_blocks,
    packed_chunks,
    paired_chunks,
    row_chunks,
    thread_spans,
)

CELLS = {"lstm": LSTM, "rnn": RNN, "gru": GRU}


def _batch_rows(layer_cls=LSTM):
    """A batch with several row chunks and a ragged last tile on this variant."""
    tile = max(1, layer_cls(1, 1)._kernels.packed_tile_rows())
    rows = 3 * max(tile, MIN_CHUNK_ROWS) + tile // 2 + 1
    assert row_chunks(rows) >= 3
    return rows


def _data(kind, n, steps, features, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, steps, features))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int) + (X[:, 0, -1] > 0)
    if kind == "ragged":
        lengths = rng.integers(2, steps + 1, size=n)
        X = [x[:t] for x, t in zip(X, lengths, strict=True)]
    return X, y


def _fitted(cls, cell, dtype, kind, n_jobs, **kw):
    batch = _batch_rows(CELLS[cell])
    X, y = _data(kind, 3 * batch + 5, 7, 3)
    if cls is LSTMRegressor:
        y = y + 0.5 * np.asarray([x[-1, 1] for x in X])
    model = cls(cell=cell, hidden_size=9, batch_size=batch, max_epochs=2, learning_rate=0.01,
                dtype=dtype, n_jobs=n_jobs, random_state=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the epoch limit's ConvergenceWarning
        model.fit(X, y)
    return model, X


@pytest.mark.parametrize("kind", ["dense", "ragged"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_a_fit_gives_the_same_model_bit_for_bit_at_any_n_jobs(kernel, cls, cell, dtype, kind):
    one, X = _fitted(cls, cell, dtype, kind, 1)
    for n_jobs in (2, 3):
        other, _ = _fitted(cls, cell, dtype, kind, n_jobs)
        for a, b in zip(one.network_.parameters(), other.network_.parameters(), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(one.predict(X), other.predict(X))
        assert one.loss_curve_ == other.loss_curve_


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_two_layer_bidirectional_fit_is_the_same_at_any_n_jobs(kernel, cell):
    one, _ = _fitted(LSTMClassifier, cell, "float32", "ragged", 1, num_layers=2,
                     bidirectional=True)
    two, _ = _fitted(LSTMClassifier, cell, "float32", "ragged", 2, num_layers=2,
                     bidirectional=True)
    for a, b in zip(one.network_.parameters(), two.network_.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", list(CELLS.values()))
def test_layer_gradients_are_the_same_bit_for_bit_at_any_n_jobs(kernel, rng, cls, dtype,
                                                                  ragged):
    # large enough that the whole-sequence products are cut into several blocks
    B, T, n_in, H = 4 * _batch_rows(cls), 16, 16, 64
    G = cls(1, 1)._gates * H
    assert gemm_blocks(2.0 * T * B * G * (2 * n_in + H)) > 1
    x = rng.normal(size=(B, T, n_in)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B) if ragged else None
    d_out = rng.normal(size=(B, T, H)).astype(dtype)
    results = []
    for n_jobs in (1, 2, 3):
        layer = cls(n_in, H, dtype=dtype, n_jobs=n_jobs, random_state=0)
        out, _ = layer.forward(x, lengths=lengths, training=True)
        grads, dx = layer.backward(d_out)[:2]
        results.append((out, grads, dx))
    for out, grads, dx in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(dx, results[0][2])
        for name, g in grads.items():
            np.testing.assert_array_equal(g, results[0][1][name], err_msg=name)


def test_the_cuts_depend_on_the_sizes_only():
    assert [row_chunks(b) for b in (1, MIN_CHUNK_ROWS - 1, 2 * MIN_CHUNK_ROWS)] == [1, 1, 2]
    assert row_chunks(10 ** 6) == row_chunks(10 ** 7)  # bounded
    assert gemm_blocks(1.0) == 1 and gemm_blocks(1e12) == gemm_blocks(1e13) > 1


def test_thread_spans_are_runs_of_whole_chunks_cut_at_equal_work():
    # eight equal chunks of 4 rows over 10 steps
    shards = [(4 * i, 4) for i in range(8)]
    nact = [np.full(10, 4, np.int32) for _ in shards]
    for n_threads in (1, 2, 3, 8, 9):
        spans = thread_spans(shards, nact, n_threads, contiguous=True)
        assert len(spans) == min(n_threads, 8)
        # the spans tile the batch, each boundary a chunk boundary
        assert spans[0][0] == 0 and spans[-1][1] == 32
        assert all(a[1] == b[0] for a, b in zip(spans[:-1], spans[1:], strict=True))
        assert all(r0 % 4 == 0 and r1 % 4 == 0 for r0, r1, _ in spans)
        for r0, r1, rows in spans:
            np.testing.assert_array_equal(rows, np.full(10, r1 - r0))
        sizes = [r1 - r0 for r0, r1, _ in spans]
        assert max(sizes) - min(sizes) <= 4
    # running rows of sorted chunks: a run's count is the sum of its chunks'
    ragged = [np.array([4, 4, 2, 0], np.int32), np.array([4, 1, 0, 0], np.int32)]
    (r0, r1, rows), = thread_spans([(0, 4), (4, 4)], ragged, 1, contiguous=True)
    assert (r0, r1) == (0, 8)
    np.testing.assert_array_equal(rows, [8, 5, 2, 0])
    # chunks whose running rows are not a prefix of a run stay their own tasks
    assert len(thread_spans(shards, nact, 1, contiguous=False)) == 8
    np.testing.assert_array_equal(chunk_of_rows([(0, 3), (3, 2)], 5), [0, 0, 0, 1, 1])


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("cls", list(CELLS.values()))
def test_a_run_of_chunks_in_one_task_gives_the_bits_of_one_task_per_chunk(kernel, rng,
                                                                          monkeypatch, cls,
                                                                          ragged):
    """The packed kernels take runs of chunks; each chunk keeps its own bias sums."""
    from fastlstm.nn import packed

    B, T, n_in, H = _batch_rows(cls), 9, 5, 24
    x = rng.normal(size=(B, T, n_in)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B) if ragged else None
    d_out = rng.normal(size=(B, T, 2 * H)).astype(np.float32)

    def run():
        layer = cls(n_in, H, n_jobs=1, bidirectional=True, random_state=0)
        out, finals = layer.forward(x, lengths=lengths, training=True)
        grads, dx = layer.backward(d_out)[:2]
        return layer, out, finals, grads, dx

    layer, *merged = run()
    if not packed.uses_packed(layer):
        pytest.skip("this variant has no packed kernels: the BLAS path runs one task per chunk")
    one_each = packed.spans

    def per_chunk(plan, directions):
        spans = one_each(plan, directions)
        assert len(spans) == 1  # one thread: one run of every chunk
        return thread_spans(plan.shards, plan.nact, len(plan.shards), False)

    monkeypatch.setattr(packed, "spans", per_chunk)
    _, *split = run()
    np.testing.assert_array_equal(merged[0], split[0])
    for a, b in zip(merged[1], split[1], strict=True):
        np.testing.assert_array_equal(a, b)
    for name, g in merged[2].items():
        np.testing.assert_array_equal(g, split[2][name], err_msg=name)
    np.testing.assert_array_equal(merged[3], split[3])


def test_packed_chunks_are_whole_tiles_from_two_tiles_up():
    for tile in (4, 6, 8, 16):
        for batch in (2 * tile, 5 * tile + 1, 64, 128, 1000, 10 ** 5):
            if batch < 2 * tile:
                continue
            bounds = packed_chunks(batch, tile)
            assert bounds[0][0] == 0 and bounds[-1][1] == batch
            assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
            assert all(lo % tile == 0 for lo, _ in bounds)
            assert len(bounds) <= MAX_TILE_CHUNKS
    # fewer rows than two tiles: the rule of the other paths
    assert len(packed_chunks(7, 6)) == row_chunks(7)
    assert len(packed_chunks(8, 0)) == row_chunks(8)


def test_the_compiled_step_s_chunks_are_two_equal_halves():
    # two threads taking the chunks in turn get the same rows (within one)
    for align in (1, 4, 6, 8, 16):
        for batch in (1, 3, 7, 8, 16, 31, 32, 33, 64, 100, 128, 1000):
            bounds = paired_chunks(batch, align)
            assert bounds[0][0] == 0 and bounds[-1][1] == batch
            assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
            assert all(hi > lo for lo, hi in bounds)
            assert len(bounds) <= max(1, row_chunks(batch))
            if row_chunks(batch) < 2:
                assert len(bounds) == 1
                continue
            first = batch - batch // 2  # the halves' rows differ by at most one
            half = [hi for _, hi in bounds].index(first) + 1
            # boundaries whole tiles from each half's start
            assert all(lo % align == 0 for lo, _ in bounds[:half])
            assert all((lo - first) % align == 0 for lo, _ in bounds[half:])
