# LSTM kernels for one layer-direction and one batch shard.
#
# Buffers are time-major and owned by the caller (fastlstm._layer):
#   gates    (T, B, 4H)  pre-activations in, activations [i, f, g, o] out;
#                        backward overwrites them with dG in place
#   h, c     (B, H)      carried state: initial state in, final state out
#   out      (T, B, ldo) hidden sequence, this direction's columns at +offset
#   c_store  (T, B, H)   cell states kept for backward (training only)
#   nact     (T,)        rows of the shard still running at each step
#   w_hh_t   (H, 4H)     W_hh transposed (forward), so the step GEMM is NN
#   block    rows per step GEMM call (see gemm_rows), <= 0 for all at once
# A shard is the rows [r0, r0 + rows) of the batch, sorted by decreasing length
# so that the rows running at step t are a prefix of the shard: step t touches
# only those (packed-sequence style), and a finished row's carried state is its
# final state.  Gate order i, f, g, o as in PyTorch.


cdef inline void _cell_forward(int H, floating* g, floating* h, floating* c) noexcept nogil:
    cdef int j
    cdef floating cv
    # i, f, o = sigmoid(G_i, G_f, G_o); g = tanh(G_g)
    for j in range(2 * H):
        g[j] = sigmoid_(g[j])
    for j in range(2 * H, 3 * H):
        g[j] = tanh_(g[j])
    for j in range(3 * H, 4 * H):
        g[j] = sigmoid_(g[j])
    # c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
    for j in range(H):
        cv = g[H + j] * c[j] + g[j] * g[2 * H + j]
        c[j] = cv
        h[j] = g[3 * H + j] * tanh_(cv)


cdef inline void _cell_backward(int H, floating* g, const floating* c,
                                const floating* c_prev, const floating* dy,
                                floating* dh, floating* dc) noexcept nogil:
    cdef int j
    cdef floating i, f, gg, o, tc, dhv, dcv
    for j in range(H):
        i = g[j]
        f = g[H + j]
        gg = g[2 * H + j]
        o = g[3 * H + j]
        tc = tanh_(c[j])
        # dh = dy_t + dh_next;  do = dh * tanh(c);  dc = dc_next + dh * o * (1 - tanh(c)^2)
        dhv = dh[j] + dy[j]
        dcv = dc[j] + dhv * o * (1 - tc * tc)
        dc[j] = dcv * f
        # dG = [dc*g*i*(1-i), dc*c_{t-1}*f*(1-f), dc*i*(1-g^2), dh*tanh(c)*o*(1-o)]
        g[j] = dcv * gg * i * (1 - i)
        g[H + j] = dcv * c_prev[j] * f * (1 - f)
        g[2 * H + j] = dcv * i * (1 - gg * gg)
        g[3 * H + j] = dhv * tc * o * (1 - o)


cdef void _forward_shard(int T, Py_ssize_t B, int H, bint reverse, int block,
                         floating* gates, const floating* w_hh_t,
                         floating* h, floating* c,
                         floating* out, Py_ssize_t ldo, floating* c_store,
                         Py_ssize_t r0, int rows, const int32_t* nact) noexcept nogil:
    cdef int s, t, n, r
    cdef Py_ssize_t G = 4 * H, row
    cdef floating* g
    cdef unsigned int fpstate = fl_denormals_off()
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = nact[t]
        row = t * B + r0
        g = gates + row * G
        # G_t += h_{t-1} W_hh^T, for the n running rows
        gemm_rows(block, n, 4 * H, H, <floating> 1, h + r0 * H, H, w_hh_t, 4 * H,
                  <floating> 1, g, 4 * H)
        for r in range(n):
            _cell_forward(H, g + r * G, h + (r0 + r) * H, c + (r0 + r) * H)
            memcpy(out + (row + r) * ldo, h + (r0 + r) * H, H * sizeof(floating))
        if c_store != NULL and n > 0:
            memcpy(c_store + row * H, c + r0 * H, <size_t> n * H * sizeof(floating))
        for r in range(n, rows):
            memset(out + (row + r) * ldo, 0, H * sizeof(floating))
    fl_denormals_restore(fpstate)


cdef void _backward_shard(int T, Py_ssize_t B, int H, bint reverse, int block,
                          floating* gates, const floating* c_store,
                          const floating* c0, const floating* w_hh,
                          const floating* dy, Py_ssize_t ldy,
                          floating* dh, floating* dc, double* db,
                          Py_ssize_t r0, int rows, const int32_t* nact) noexcept nogil:
    cdef int s, t, n, r, t_prev, n_prev, j
    cdef Py_ssize_t G = 4 * H, row
    cdef floating* g
    cdef const floating* cp
    cdef unsigned int fpstate = fl_denormals_off()
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = nact[t]
        row = t * B + r0
        g = gates + row * G
        # The step before t in processing order, and how many of our rows ran
        # there; the other running rows started at t from the initial state.
        if reverse:
            t_prev = t + 1
            n_prev = nact[t_prev] if t_prev < T else 0
        else:
            t_prev = t - 1
            n_prev = n if t > 0 else 0
        for r in range(n):
            if r < n_prev:
                cp = c_store + (t_prev * B + r0 + r) * H
            else:
                cp = c0 + (r0 + r) * H
            _cell_backward(H, g + r * G, c_store + (row + r) * H, cp,
                           dy + (row + r) * ldy, dh + (r0 + r) * H,
                           dc + (r0 + r) * H)
            # db = column sums of dG, while the row is in cache
            for j in range(4 * H):
                db[j] += g[r * G + j]
        # finished rows contribute nothing to the weight gradients
        if rows > n:
            memset(g + <Py_ssize_t> n * G, 0, <size_t> (rows - n) * G * sizeof(floating))
        # dh_{t-1} = dG_t W_hh
        gemm_rows(block, n, H, 4 * H, <floating> 1, g, 4 * H, w_hh, H,
                  <floating> 0, dh + r0 * H, H)
    fl_denormals_restore(fpstate)


def forward_recurrent(floating[:, :, ::1] gates, const floating[:, ::1] w_hh_t,
                      floating[:, ::1] h, floating[:, ::1] c,
                      floating[:, :, ::1] out, Py_ssize_t out_offset,
                      c_store, bint reverse, Py_ssize_t r0, int rows,
                      const int32_t[::1] nact, int block=0):
    """Run the recurrence of one layer-direction over one shard (GIL released).

    ``gates`` holds ``x W_ih^T + b`` on entry and the activations on exit;
    ``h``/``c`` hold the initial state on entry and the final state on exit;
    ``c_store`` is a (T, B, H) array to keep the cell states in, or None;
    ``w_hh_t`` is W_hh transposed, (H, 4H).
    """
    cdef int T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef int H = w_hh_t.shape[0]
    cdef floating[:, :, ::1] cs
    cdef floating* cs_ptr = NULL
    if gates.shape[2] != 4 * H or w_hh_t.shape[1] != 4 * H:
        raise ValueError("gates and w_hh_t must have 4*H columns")
    if h.shape[0] != B or c.shape[0] != B or h.shape[1] != H or c.shape[1] != H:
        raise ValueError("h and c must be (B, H)")
    if out.shape[0] != T or out.shape[1] != B or out_offset + H > out.shape[2]:
        raise ValueError("out must be (T, B, >= offset + H)")
    if nact.shape[0] != T or r0 < 0 or rows < 0 or r0 + rows > B:
        raise ValueError("bad shard")
    if c_store is not None:
        cs = c_store
        if cs.shape[0] != T or cs.shape[1] != B or cs.shape[2] != H:
            raise ValueError("c_store must be (T, B, H)")
        cs_ptr = &cs[0, 0, 0]
    with nogil:
        _forward_shard(T, B, H, reverse, block, &gates[0, 0, 0], &w_hh_t[0, 0], &h[0, 0],
                       &c[0, 0], &out[0, 0, out_offset], out.shape[2], cs_ptr,
                       r0, rows, &nact[0])


def backward_recurrent(floating[:, :, ::1] gates, const floating[:, :, ::1] c_store,
                       const floating[:, ::1] c0, const floating[:, ::1] w_hh,
                       const floating[:, :, ::1] dy, Py_ssize_t dy_offset,
                       floating[:, ::1] dh, floating[:, ::1] dc, double[::1] db,
                       bint reverse, Py_ssize_t r0, int rows,
                       const int32_t[::1] nact, int block=0):
    """Backpropagate one layer-direction through time over one shard (GIL released).

    ``gates`` holds the forward activations on entry and dG on exit;
    ``dh``/``dc`` hold the gradient of the final state on entry and of the
    initial state on exit; the shard's column sums of dG (the bias gradient)
    are added to ``db``.
    """
    cdef int T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef int H = w_hh.shape[1]
    if gates.shape[2] != 4 * H or w_hh.shape[0] != 4 * H:
        raise ValueError("gates and w_hh must have 4*H columns/rows")
    if c_store.shape[0] != T or c_store.shape[1] != B or c_store.shape[2] != H:
        raise ValueError("c_store must be (T, B, H)")
    if c0.shape[0] != B or c0.shape[1] != H:
        raise ValueError("c0 must be (B, H)")
    if dh.shape[0] != B or dc.shape[0] != B or dh.shape[1] != H or dc.shape[1] != H:
        raise ValueError("dh and dc must be (B, H)")
    if dy.shape[0] != T or dy.shape[1] != B or dy_offset + H > dy.shape[2]:
        raise ValueError("dy must be (T, B, >= offset + H)")
    if nact.shape[0] != T or r0 < 0 or rows < 0 or r0 + rows > B:
        raise ValueError("bad shard")
    if db.shape[0] != 4 * H:
        raise ValueError("db must have 4*H entries")
    with nogil:
        _backward_shard(T, B, H, reverse, block, &gates[0, 0, 0], &c_store[0, 0, 0],
                        &c0[0, 0], &w_hh[0, 0], &dy[0, 0, dy_offset], dy.shape[2],
                        &dh[0, 0], &dc[0, 0], &db[0], r0, rows, &nact[0])


cdef bint _all_finite_(const floating* a, Py_ssize_t n) noexcept nogil:
    cdef floating probe = 0
    cdef Py_ssize_t j
    for j in range(n):
        probe += a[j] * 0  # NaN if any entry is NaN or infinite
    return probe == 0


cdef int _step(Py_ssize_t L, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, void** params,
               const floating* x, floating* h, floating* c) noexcept nogil:
    # One time step of every layer, state updated in place; sizes are 64-bit
    # throughout (B * 4H passes 2^31 long before memory runs out).
    # Returns 0, or -1 if the scratch buffer cannot be allocated.
    cdef Py_ssize_t G = 4 * H
    cdef floating* gates = <floating*> malloc(<size_t> B * <size_t> G * sizeof(floating))
    cdef const floating* inp = x
    cdef const floating* b_ih
    cdef const floating* b_hh
    cdef floating* hl
    cdef Py_ssize_t l, r, j, n_in = I
    cdef unsigned int fpstate
    if gates == NULL:
        return -1
    fpstate = fl_denormals_off()
    for l in range(L):
        b_ih = <const floating*> params[4 * l + 2]
        b_hh = <const floating*> params[4 * l + 3]
        hl = h + l * B * H
        # G = b_ih + b_hh + x W_ih^T + h_{t-1} W_hh^T
        for r in range(B):
            for j in range(G):
                gates[r * G + j] = b_ih[j] + b_hh[j]
        gemm(False, True, B, G, n_in, <floating> 1, inp, n_in,
             <const floating*> params[4 * l], n_in, <floating> 1, gates, G)
        gemm(False, True, B, G, H, <floating> 1, hl, H,
             <const floating*> params[4 * l + 1], H, <floating> 1, gates, G)
        for r in range(B):
            _cell_forward(H, gates + r * G, hl + r * H, c + l * B * H + r * H)
        inp = hl
        n_in = H
    fl_denormals_restore(fpstate)
    free(gates)
    return 0
