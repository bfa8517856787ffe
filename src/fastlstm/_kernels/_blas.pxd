# The one module that owns BLAS calls: row-major wrappers over SciPy's
# cython_blas, fused on float/double.  Row-major C = op(A) op(B) is the
# column-major C^T = op(B)^T op(A)^T, so the operands are swapped and the
# transpose flags pass through unchanged.
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    # C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, all row-major
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m <= 0 or n <= 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)
