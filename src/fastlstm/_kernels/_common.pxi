# What every cell's kernels share: imports, the platform hooks, and the
# whole-sequence matrix product the layer uses outside the time loops.
# Compiled once per instruction-set level through _cells_<level>.pyx.
cimport numpy as cnp
from cython cimport floating
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np

cnp.import_array()

from fastlstm._kernels._blas cimport gemm, gemm_rows
from fastlstm._kernels._math cimport sigmoid_, tanh_


cdef extern from "_platform.h":
    unsigned int fl_denormals_off() noexcept nogil
    void fl_denormals_restore(unsigned int old) noexcept nogil




def matmul(const floating[:, :] a, const floating[:, :] b, floating[:, :] c,
           bint trans_a=False, bint trans_b=False, floating alpha=1, floating beta=0):
    """``c = alpha * op(a) @ op(b) + beta * c`` through BLAS, GIL released.

    Rows may be strided (column slices of a wider array); each row must be
    contiguous.  Used by the layer for the whole-sequence GEMMs.
    """
    cdef Py_ssize_t isz = sizeof(floating)
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int ka = a.shape[1] if trans_a else a.shape[0]
    cdef int kb = b.shape[1] if trans_b else b.shape[0]
    cdef int nb = b.shape[0] if trans_b else b.shape[1]
    cdef int lda, ldb, ldc
    if ka != m or kb != k or nb != n:
        raise ValueError("matmul: shapes do not align")
    if m == 0 or n == 0:
        return
    if ((a.shape[1] > 1 and a.strides[1] != isz) or (b.shape[1] > 1 and b.strides[1] != isz)
            or (c.shape[1] > 1 and c.strides[1] != isz)):
        raise ValueError("matmul: rows must be contiguous")
    lda = max(1, a.strides[0] // isz, a.shape[1])
    ldb = max(1, b.strides[0] // isz, b.shape[1])
    ldc = max(1, c.strides[0] // isz, c.shape[1])
    if a.shape[0] == 1:
        lda = max(1, a.shape[1])
    if b.shape[0] == 1:
        ldb = max(1, b.shape[1])
    if c.shape[0] == 1:
        ldc = max(1, c.shape[1])
    if k == 0:
        raise ValueError("matmul: empty inner dimension")
    with nogil:
        gemm(trans_a, trans_b, m, n, k, alpha, &a[0, 0], lda, &b[0, 0], ldb,
             beta, &c[0, 0], ldc)
