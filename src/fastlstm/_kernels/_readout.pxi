# The readouts of a streaming step: the linear readout and its softmax in C,
# without NumPy's calls around them.  readout_softmax is the training
# softmax (fastlstm.train.network) to the bit; readout_proba and
# readout_values fold the readout's product in (the same numbers up to
# rounding).  Included after _step.pxi.
from libc.math cimport exp


_np_exp = np.exp


cdef void _shift_rows(const floating* y, const floating* b, double* z, Py_ssize_t n,
                      Py_ssize_t m) noexcept nogil:
    # z = (y + b) - max(y + b) per row: y + b rounded to the dtype first, as NumPy's
    # `y += b` does; the maximum and the difference are exact in any order
    cdef Py_ssize_t i, j
    cdef double top, v
    cdef floating s
    for i in range(n):
        for j in range(m):
            s = y[i * m + j] + b[j]
            z[i * m + j] = s
        top = z[i * m]
        for j in range(1, m):
            v = z[i * m + j]
            if v > top or v != v:
                top = v
                if top != top:
                    break
        for j in range(m):
            z[i * m + j] = z[i * m + j] - top


cdef void _shift_logits(double* z, const floating* b, Py_ssize_t n,
                        Py_ssize_t m) noexcept nogil:
    # z (n, m) holds logits summed in float64: each rounded to the dtype, then
    # _shift_rows over them in place (y + b rounded to the dtype, minus the row's
    # maximum)
    cdef Py_ssize_t i, j
    cdef double top, v
    cdef floating s
    for i in range(n):
        for j in range(m):
            s = <floating> z[i * m + j]
            s = s + b[j]
            z[i * m + j] = s
        top = z[i * m]
        for j in range(1, m):
            v = z[i * m + j]
            if v > top or v != v:
                top = v
                if top != top:
                    break
        for j in range(m):
            z[i * m + j] = z[i * m + j] - top


def readout_softmax(y, bias):
    """``softmax(y + bias)`` per row, in float64: fastlstm's ``y += bias; softmax(y)``
    (:func:`fastlstm.train.network.softmax`) to the bit.

    ``y`` (n, m) and ``bias`` (m,) are C-contiguous arrays of one dtype
    (``y`` is not modified).  The shift by the row maximum and the division
    are exact IEEE operations in any order; exp is NumPy's own; rows of fewer
    than 8 entries are summed in order, as NumPy's pairwise sum does, and
    wider rows by NumPy itself.
    """
    cdef cnp.ndarray ya = y, ba = bias
    cdef int t = cnp.PyArray_TYPE(ya)
    if not (cnp.PyArray_NDIM(ya) == 2 and cnp.PyArray_IS_C_CONTIGUOUS(ya)
            and cnp.PyArray_NDIM(ba) == 1 and cnp.PyArray_IS_C_CONTIGUOUS(ba)
            and cnp.PyArray_TYPE(ba) == t and ba.shape[0] == ya.shape[1]
            and (t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64)):
        raise ValueError("readout_softmax: y (n, m) and bias (m,) must be C-contiguous "
                         "arrays of one float dtype")
    cdef Py_ssize_t n = ya.shape[0], m = ya.shape[1]
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = m
    z = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)
    cdef double* zp = <double*> cnp.PyArray_DATA(<cnp.ndarray> z)
    if n == 0 or m == 0:
        return z
    if t == cnp.NPY_FLOAT32:
        _shift_rows(<const float*> cnp.PyArray_DATA(ya), <const float*> cnp.PyArray_DATA(ba),
                    zp, n, m)
    else:
        _shift_rows(<const double*> cnp.PyArray_DATA(ya), <const double*> cnp.PyArray_DATA(ba),
                    zp, n, m)
    return _softmax_shifted(z, n, m)


cdef object _softmax_shifted(object z, Py_ssize_t n, Py_ssize_t m, bint numpy=True):
    # z (n, m) float64, each row shifted by its maximum: exp and the division
    # by the row sums, in place, as NumPy's softmax (exp is NumPy's own; rows of
    # fewer than 8 entries summed in order, as NumPy's pairwise sum does, wider
    # rows by NumPy itself); not numpy: the C library's exp, every row summed
    # in order (the same numbers up to rounding, without NumPy's calls)
    cdef double* zp = <double*> cnp.PyArray_DATA(<cnp.ndarray> z)
    cdef double total
    cdef Py_ssize_t i, j
    if numpy:
        _np_exp(z, out=z)
    else:
        for i in range(n * m):
            zp[i] = exp(zp[i])
    if m >= 8 and numpy:
        z /= z.sum(axis=-1, keepdims=True)
        return z
    for i in range(n):
        total = 0.0
        for j in range(m):
            total = total + zp[i * m + j]
        for j in range(m):
            zp[i * m + j] = zp[i * m + j] / total
    return z


cdef inline bint _readout_ok(object h, object w, object b, int wtype):
    # h (n, H) float32/float64, w (m, H) of dtype wtype (-1: h's), b (m,) of w's
    # dtype; each exactly a C-contiguous, aligned ndarray
    if not (cnp.PyArray_CheckExact(h) and cnp.PyArray_CheckExact(w)
            and cnp.PyArray_CheckExact(b)):
        return False
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray> h)
    if wtype < 0:
        wtype = t
    return ((t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64)
            and _step_array(h, 2, t) and _step_array(w, 2, wtype) and _step_array(b, 1, wtype)
            and (<cnp.ndarray> w).shape[1] == (<cnp.ndarray> h).shape[1]
            and (<cnp.ndarray> b).shape[0] == (<cnp.ndarray> w).shape[0])


ctypedef fused wfloat:
    float
    double


cdef void _dot_rows(const floating* h, const wfloat* w, double* y, Py_ssize_t n,
                    Py_ssize_t m, Py_ssize_t H) noexcept nogil:
    # y[i, k] = sum_j h[i, j] w[k, j] in float64: four running sums over j
    # modulo 4 (four chains of additions instead of one), then added in order
    cdef Py_ssize_t i, k, j, H4 = H - H % 4
    cdef double a0, a1, a2, a3
    cdef const floating* hr
    cdef const wfloat* wr
    for i in range(n):
        hr = h + i * H
        for k in range(m):
            wr = w + k * H
            a0 = a1 = a2 = a3 = 0.0
            for j in range(0, H4, 4):
                a0 = a0 + <double> hr[j] * <double> wr[j]
                a1 = a1 + <double> hr[j + 1] * <double> wr[j + 1]
                a2 = a2 + <double> hr[j + 2] * <double> wr[j + 2]
                a3 = a3 + <double> hr[j + 3] * <double> wr[j + 3]
            for j in range(H4, H):
                a0 = a0 + <double> hr[j] * <double> wr[j]
            y[i * m + k] = (a0 + a1) + (a2 + a3)


def readout_proba(h, weight, bias):
    """Class probabilities of a linear readout: ``softmax(h @ weight.T + bias)`` per row.

    ``h`` (n, H), ``weight`` (m, H) and ``bias`` (m,): ndarrays of one float
    dtype, the weights C-contiguous (``h`` is copied if it is not).  The
    logits are summed in float64 and rounded to the dtype (as a product of
    that dtype), then the softmax of
    :func:`readout_softmax` in float64 with the C library's exp and each
    row's sum taken in order.  One call for a streaming step's readout: the
    numbers of ``readout_softmax(h @ weight.T, bias)`` up to rounding.
    """
    if not _readout_ok(h, weight, bias, -1) and isinstance(h, np.ndarray):
        h = np.ascontiguousarray(h)  # a state the caller gave as out=, strided
    if not _readout_ok(h, weight, bias, -1):
        raise ValueError("readout_proba: h (n, H), weight (m, H) and bias (m,) must be "
                         "C-contiguous arrays of one float dtype")
    cdef cnp.ndarray ha = h, wa = weight, ba = bias
    cdef Py_ssize_t n = ha.shape[0], H = ha.shape[1], m = wa.shape[0]
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = m
    z = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)
    if n == 0 or m == 0:
        return z
    cdef double* zp = <double*> cnp.PyArray_DATA(<cnp.ndarray> z)
    if cnp.PyArray_TYPE(ha) == cnp.NPY_FLOAT32:
        _dot_rows(<const float*> cnp.PyArray_DATA(ha), <const float*> cnp.PyArray_DATA(wa),
                  zp, n, m, H)
        _shift_logits(zp, <const float*> cnp.PyArray_DATA(ba), n, m)
    else:
        _dot_rows(<const double*> cnp.PyArray_DATA(ha), <const double*> cnp.PyArray_DATA(wa),
                  zp, n, m, H)
        _shift_logits(zp, <const double*> cnp.PyArray_DATA(ba), n, m)
    return _softmax_shifted(z, n, m, False)


def readout_values(h, weight, bias, bint single):
    """A linear readout in float64: ``h @ weight.T + bias`` per row.

    ``h`` (n, H) float32 or float64 (copied if not C-contiguous), ``weight``
    (m, H) and ``bias`` (m,) float64 C-contiguous ndarrays.  Returns (n, m), or (n,) with
    ``single`` (m must then be 1).  One call for a streaming regressor's
    readout with the target's scaling folded into ``weight`` and ``bias``.
    """
    if not _readout_ok(h, weight, bias, cnp.NPY_FLOAT64) and isinstance(h, np.ndarray):
        h = np.ascontiguousarray(h)  # a state the caller gave as out=, strided
    if not _readout_ok(h, weight, bias, cnp.NPY_FLOAT64) or (
            single and (<cnp.ndarray> weight).shape[0] != 1):
        raise ValueError("readout_values: h (n, H), weight (m, H) and bias (m,) must be "
                         "C-contiguous arrays, weight and bias float64 (m = 1 for one "
                         "output)")
    cdef cnp.ndarray ha = h, wa = weight, ba = bias
    cdef Py_ssize_t n = ha.shape[0], H = ha.shape[1], m = wa.shape[0], i, k
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = m
    y = cnp.PyArray_EMPTY(1 if single else 2, dims, cnp.NPY_FLOAT64, 0)
    cdef double* yp = <double*> cnp.PyArray_DATA(<cnp.ndarray> y)
    cdef const double* bp = <const double*> cnp.PyArray_DATA(ba)
    if n == 0 or m == 0:
        return y
    if cnp.PyArray_TYPE(ha) == cnp.NPY_FLOAT32:
        _dot_rows(<const float*> cnp.PyArray_DATA(ha), <const double*> cnp.PyArray_DATA(wa),
                  yp, n, m, H)
    else:
        _dot_rows(<const double*> cnp.PyArray_DATA(ha), <const double*> cnp.PyArray_DATA(wa),
                  yp, n, m, H)
    for i in range(n):
        for k in range(m):
            yp[i * m + k] = yp[i * m + k] + bp[k]
    return y
