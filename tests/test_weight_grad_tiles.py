"""The weight-gradient tiles (csrc/fl_wgrad.h): ``A^T B`` summed over rows in order.

Against float64 for shapes cut from each SIMD variant's vector width and
tile (full tiles, edge rows, edge columns, one column, one row, no rows);
and the same bits whatever tile an entry falls in: a row or a column of the
product computed alone, or the rows given in blocks, equals the whole.
"""

import numpy as np
import pytest

from fastlstm import _kernels

SIMD = [v for v in _kernels.available_variants() if _kernels.load(v).packed_width() > 0]
pytestmark = pytest.mark.skipif(not SIMD, reason="this CPU runs no SIMD kernel variant")


@pytest.fixture(params=SIMD)
def k(request):
    return _kernels.load(request.param)


def _shapes(k):
    vw, mr = k.packed_width(), k.packed_tile_rows()
    return [(4 * mr, 8 * mr, vw), (3 * mr + 1, 8 * mr + 3, 2 * vw), (200, 4 * vw, 8 * vw + 3),
            (5, 2, vw - 1), (7, 1, 9 * vw + 5), (11, 13, 1), (0, mr + 1, vw + 1), (1, 1, 1),
            (300, mr, 3),
            # narrower than a whole tile (two or three vectors and an edge), and
            # rows under whole tiles of every height
            (150, 4 * mr + 7, 2 * vw), (97, 2 * mr + 5, 3 * vw + 2), (64, 4 * vw, vw + 5),
            (33, 31, 2 * vw + 1),
            # one column of the product (the input weights of one feature): a
            # row of 4 vectors, and of 4 + 2 + 1 vectors and an edge
            (150, 4 * vw, 1), (60, 7 * vw + 3, 1), (40, 1, 6 * vw)]


def _ab(rng, rows, m, n):
    return (rng.normal(size=(rows, m)).astype(np.float32),
            rng.normal(size=(rows, n)).astype(np.float32))


def test_the_product_matches_float64(k, rng):
    for rows, m, n in _shapes(k):
        a, b = _ab(rng, rows, m, n)
        out = k.weight_grad(a, b)
        assert out.shape == (m, n) and out.dtype == np.float32
        ref = a.astype(np.float64).T @ b.astype(np.float64)
        scale = np.abs(a).astype(np.float64).T @ np.abs(b).astype(np.float64)
        # float32 sums of `rows` products: a few ulps of the sum of magnitudes each
        assert np.all(np.abs(out - ref) <= 1e-6 * rows * scale + 1e-30), (rows, m, n)


def test_no_rows_give_zeros(k):
    out = k.weight_grad(np.zeros((0, 5), np.float32), np.zeros((0, 17), np.float32))
    np.testing.assert_array_equal(out, np.zeros((5, 17), np.float32))


def test_an_entry_has_the_same_bits_in_any_tile(k, rng):
    for rows, m, n in _shapes(k):
        a, b = _ab(rng, rows, m, n)
        whole = k.weight_grad(a, b).view(np.uint32)
        for i in {0, m // 2, m - 1}:  # a row alone: the one-row tiles
            part = k.weight_grad(np.ascontiguousarray(a[:, i:i + 1]), b)
            np.testing.assert_array_equal(part.view(np.uint32)[0], whole[i])
        for j in {0, n // 2, n - 1}:  # a column alone: narrow tiles, or the row path
            part = k.weight_grad(a, np.ascontiguousarray(b[:, j:j + 1]))
            np.testing.assert_array_equal(part.view(np.uint32)[:, 0], whole[:, j])
        # the first rows of the product's tiles shifted by one
        if m > 1:
            part = k.weight_grad(np.ascontiguousarray(a[:, 1:]), b)
            np.testing.assert_array_equal(part.view(np.uint32), whole[1:])


def test_sums_run_over_the_rows_in_order(k):
    # 1 + 2^-24 * r rounded at every row: only a sequential float32 sum gives this
    rows = 256
    a = np.ones((rows, 1), np.float32)
    b = np.full((rows, 1), np.float32(2.0 ** -24))
    b[0] = 1.0
    out = k.weight_grad(a, b)
    acc = np.float32(0)
    for r in range(rows):
        acc = np.float32(acc + b[r, 0])
    assert out[0, 0] == acc == np.float32(1.0)


def test_mismatched_rows_are_refused(k):
    with pytest.raises(ValueError, match="same number of rows"):
        k.weight_grad(np.zeros((3, 2), np.float32), np.zeros((4, 2), np.float32))
