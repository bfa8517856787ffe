# Weight gradients on the packed kernels' register tiles (csrc/fl_wgrad.h),
# float32: the compiled training step's dW = dG^T X, and a wrapper for tests.

cdef extern from "csrc/fl_wgrad.h":
    void fl_wgrad(int64_t rows, int64_t M, int64_t N, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float* out, int64_t ldo) noexcept nogil


def weight_grad(const float[:, ::1] a, const float[:, ::1] b):
    """``a.T @ b`` of two float32 blocks of the same rows, on the weight-gradient tiles.

    Each entry is summed over the rows in order (csrc/fl_wgrad.h).
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError("weight_grad: a and b need the same number of rows")
    if fl_packed_width() == 0:
        raise RuntimeError("this kernel variant has no packed kernels")
    out = np.empty((a.shape[1], b.shape[1]), dtype=np.float32)
    cdef float[:, ::1] o = out
    if a.shape[1] and b.shape[1]:
        with nogil:
            fl_wgrad(a.shape[0], a.shape[1], b.shape[1], &a[0, 0] if a.shape[0] else NULL,
                     a.shape[1], &b[0, 0] if b.shape[0] else NULL, b.shape[1], &o[0, 0],
                     b.shape[1])
    return out
