# The one module that owns BLAS calls: row-major wrappers over SciPy's
# cython_blas, fused on float/double.  Row-major C = op(A) op(B) is the
# column-major C^T = op(B)^T op(A)^T, so the operands are swapped and the
# transpose flags pass through unchanged.
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    # C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, all row-major
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int rows, cols, incx, incy = 1
    if m <= 0 or n <= 0:
        return
    if m == 1:
        # One row: y = op(B)^T a as a GEMV, which does not pack op(B) the way
        # GEMM does (batch-1 steps stream the whole recurrent weight each call).
        rows = k if trans_b else n
        cols = n if trans_b else k
        incx = lda if trans_a else 1
        if floating is float:
            sgemv(&tb, &rows, &cols, &alpha, <float*> b, &ldb, <float*> a, &incx,
                  &beta, c, &incy)
        else:
            dgemv(&tb, &rows, &cols, &alpha, <double*> b, &ldb, <double*> a, &incx,
                  &beta, c, &incy)
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)


cdef inline void gemm_rows(int block, int m, int n, int k, floating alpha,
                           const floating* a, int lda, const floating* b, int ldb,
                           floating beta, floating* c, int ldc) noexcept nogil:
    # C = alpha * A B + beta * C in blocks of ``block`` rows (all at once if
    # block <= 0): OpenBLAS's AVX-512 builds take an unpacked small-matrix path
    # when m*n*k <= 1e6 and both operands are untransposed (column-major NN),
    # which at recurrent-step sizes is up to twice as fast as the packed path.
    cdef int r = 0
    if block <= 0 or block >= m:
        gemm(False, False, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    while r < m:
        gemm(False, False, min(block, m - r), n, k, alpha, a + <Py_ssize_t> r * lda, lda,
             b, ldb, beta, c + <Py_ssize_t> r * ldc, ldc)
        r += block
