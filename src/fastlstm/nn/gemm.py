"""The whole-sequence products of the backward: weight gradients and dX, split over threads."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.nn.plan import ROW_ALIGN, _split, gemm_blocks
from fastlstm.runtime.parallel import run_grouped


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, trans_a: bool = False,
            accumulate: bool = False) -> None:
    """``out = op(a) @ b`` (``+=`` with ``accumulate``) through NumPy's BLAS, GIL released.

    The whole-sequence products of backward (weight gradients, dX): NumPy's
    OpenBLAS build ran these long products 10-60% faster than SciPy's (the
    same library, other kernels selected) on the CPUs we measured, most at
    small models; any strided view NumPy can hand to BLAS is fine.
    """
    a = a.T if trans_a else a
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)


def gradient_products(weight_grads: Any, input_grads: Any, gate_rows: int, rows: int,
                      width: int, n_threads: int) -> None:
    """Run a layer's whole-sequence gradient products on up to ``n_threads`` threads.

    ``weight_grads(lo, hi)`` computes gate rows [lo, hi) of the weight
    gradients, ``input_grads(lo, hi)`` sequence rows [lo, hi) of dX (None: no
    dX); task i is block i of both splits.  ``width``: the summed inner sizes, for the
    flop count.  The blocks follow from the sizes alone (``gemm_blocks``) and
    each output entry is one product over all rows, so every entry is the
    same BLAS call at any ``n_threads``: the thread count changes speed, not
    results.
    """
    blocks = gemm_blocks(2.0 * rows * gate_rows * width)
    w_blocks = _split(gate_rows, blocks, ROW_ALIGN)
    x_blocks = _split(rows, blocks, ROW_ALIGN) if input_grads is not None else []

    def work(i: int) -> None:
        if i < len(w_blocks):
            weight_grads(*w_blocks[i])
        if i < len(x_blocks):
            input_grads(*x_blocks[i])

    run_grouped([lambda i=i: work(i) for i in range(max(len(w_blocks), len(x_blocks)))],
                n_threads)
