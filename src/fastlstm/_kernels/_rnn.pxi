# Elman RNN (tanh) kernels for one layer-direction and one batch shard, laid
# out as the LSTM's (see _lstm.pxi) with one gate: gates (T, B, H) holds
# x W_ih^T + b on entry and h_t on exit; backward overwrites it with dG; the
# forward takes W_hh transposed.


cdef void _rnn_forward_shard(int T, Py_ssize_t B, int H, bint reverse, int block,
                             floating* gates, const floating* w_hh_t, floating* h,
                             floating* out, Py_ssize_t ldo,
                             Py_ssize_t r0, int rows, const int32_t* nact) noexcept nogil:
    cdef int s, t, n, r
    cdef Py_ssize_t j
    cdef Py_ssize_t row
    cdef floating* g
    cdef unsigned int fpstate = fl_denormals_off()
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = nact[t]
        row = t * B + r0
        g = gates + row * H
        # h_t = tanh(G_t + h_{t-1} W_hh^T), for the n running rows
        gemm_rows(block, n, H, H, <floating> 1, h + r0 * H, H, w_hh_t, H, <floating> 1, g, H)
        for j in range(<Py_ssize_t> n * H):
            g[j] = tanh_(g[j])
        if n > 0:
            memcpy(h + r0 * H, g, <size_t> n * H * sizeof(floating))
        for r in range(n):
            memcpy(out + (row + r) * ldo, g + r * H, H * sizeof(floating))
        for r in range(n, rows):
            memset(out + (row + r) * ldo, 0, H * sizeof(floating))
    fl_denormals_restore(fpstate)


cdef void _rnn_backward_shard(int T, Py_ssize_t B, int H, bint reverse, int block,
                              floating* gates, const floating* w_hh,
                              const floating* dy, Py_ssize_t ldy, floating* dh, double* db,
                              Py_ssize_t r0, int rows, const int32_t* nact) noexcept nogil:
    cdef int s, t, n, r, j
    cdef Py_ssize_t row
    cdef floating* g
    cdef floating* dhr
    cdef const floating* dyr
    cdef unsigned int fpstate = fl_denormals_off()
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = nact[t]
        row = t * B + r0
        g = gates + row * H
        for r in range(n):
            dhr = dh + (r0 + r) * H
            dyr = dy + (row + r) * ldy
            # dG = (dy_t + dh_next) * (1 - h_t^2)
            for j in range(H):
                g[r * H + j] = (dyr[j] + dhr[j]) * (1 - g[r * H + j] * g[r * H + j])
            for j in range(H):
                db[j] += g[r * H + j]
        if rows > n:
            memset(g + <Py_ssize_t> n * H, 0, <size_t> (rows - n) * H * sizeof(floating))
        # dh_{t-1} = dG_t W_hh
        gemm_rows(block, n, H, H, <floating> 1, g, H, w_hh, H, <floating> 0, dh + r0 * H, H)
    fl_denormals_restore(fpstate)


def rnn_forward_recurrent(floating[:, :, ::1] gates, const floating[:, ::1] w_hh_t,
                          floating[:, ::1] h, floating[:, :, ::1] out, Py_ssize_t out_offset,
                          bint reverse, Py_ssize_t r0, int rows, const int32_t[::1] nact,
                          int block=0):
    """Run the tanh recurrence of one layer-direction over one shard (GIL released)."""
    cdef int T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef int H = w_hh_t.shape[1]
    if gates.shape[2] != H or w_hh_t.shape[0] != H:
        raise ValueError("gates and w_hh_t must have H columns/rows")
    if h.shape[0] != B or h.shape[1] != H:
        raise ValueError("h must be (B, H)")
    if out.shape[0] != T or out.shape[1] != B or out_offset + H > out.shape[2]:
        raise ValueError("out must be (T, B, >= offset + H)")
    if nact.shape[0] != T or r0 < 0 or rows < 0 or r0 + rows > B:
        raise ValueError("bad shard")
    with nogil:
        _rnn_forward_shard(T, B, H, reverse, block, &gates[0, 0, 0], &w_hh_t[0, 0], &h[0, 0],
                           &out[0, 0, out_offset], out.shape[2], r0, rows, &nact[0])


def rnn_backward_recurrent(floating[:, :, ::1] gates, const floating[:, ::1] w_hh,
                           const floating[:, :, ::1] dy, Py_ssize_t dy_offset,
                           floating[:, ::1] dh, double[::1] db,
                           bint reverse, Py_ssize_t r0, int rows, const int32_t[::1] nact,
                           int block=0):
    """Backpropagate the tanh recurrence through time over one shard (GIL released)."""
    cdef int T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef int H = w_hh.shape[1]
    if gates.shape[2] != H or w_hh.shape[0] != H or db.shape[0] != H:
        raise ValueError("gates, w_hh and db must have H columns/rows/entries")
    if dh.shape[0] != B or dh.shape[1] != H:
        raise ValueError("dh must be (B, H)")
    if dy.shape[0] != T or dy.shape[1] != B or dy_offset + H > dy.shape[2]:
        raise ValueError("dy must be (T, B, >= offset + H)")
    if nact.shape[0] != T or r0 < 0 or rows < 0 or r0 + rows > B:
        raise ValueError("bad shard")
    with nogil:
        _rnn_backward_shard(T, B, H, reverse, block, &gates[0, 0, 0], &w_hh[0, 0],
                            &dy[0, 0, dy_offset], dy.shape[2], &dh[0, 0], &db[0],
                            r0, rows, &nact[0])
