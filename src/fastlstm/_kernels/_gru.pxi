# GRU kernels (PyTorch's nn.GRU, reset after the recurrent product) for one
# layer-direction and one batch shard, laid out as the LSTM's (_lstm.pxi):
#   gates  (T, B, 3H)  x W_ih^T + b_ih + [b_hr, b_hz, 0] in; activations
#                      [r, z, n] out; backward overwrites them with the input
#                      side's gate gradients [dr, dz, dn] (pre-activation)
#   h      (B, H)      carried state: initial state in, final state out
#   out    (T, B, ldo) hidden sequence, this direction's columns at +offset
#   store  (T, B, 3H)  training only: [W_hn h_{t-1} + b_hn, h_{t-1}, -] per
#                      step; backward overwrites it with the recurrent side's
#                      gate gradients [dr, dz, r * dn] (the layer's dW_hh, db_hh)
#   w_hh_t (H, 3H) forward, w_hh (3H, H) backward; b_hn (H,)
# Per step:  r = sigmoid(G_r + h W_hr^T), z = sigmoid(G_z + h W_hz^T),
#            n = tanh(G_n + r * (h W_hn^T + b_hn)),  h' = (1 - z) * n + z * h.


cdef void _gru_forward_shard(int T, Py_ssize_t B, int H, bint reverse, int block,
                             floating* gates, const floating* w_hh_t, const floating* b_hn,
                             floating* h, floating* out, Py_ssize_t ldo, floating* store,
                             floating* hg, Py_ssize_t r0, int rows,
                             const int32_t* nact) noexcept nogil:
    cdef int s, t, n, r, j
    cdef Py_ssize_t row, G = 3 * H
    cdef floating* g
    cdef floating* hgr
    cdef floating* hr
    cdef floating* st
    cdef floating rv, zv, nv, hn, hp
    cdef unsigned int fpstate = fl_denormals_off()
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = nact[t]
        row = t * B + r0
        g = gates + row * G
        # the recurrent products h_{t-1} W_hh^T of the n running rows
        if n > 0:
            gemm_rows(block, n, <int> G, H, <floating> 1, h + r0 * H, H, w_hh_t, <int> G,
                      <floating> 0, hg, <int> G)
        for r in range(n):
            hgr = hg + <Py_ssize_t> r * G
            hr = h + (r0 + r) * H
            if store != NULL:  # what backward needs: W_hn h_{t-1} + b_hn and h_{t-1}
                st = store + (row + r) * G
                for j in range(H):
                    st[j] = hgr[2 * H + j] + b_hn[j]
                memcpy(st + H, hr, H * sizeof(floating))
            for j in range(H):
                rv = sigmoid_(g[r * G + j] + hgr[j])
                zv = sigmoid_(g[r * G + H + j] + hgr[H + j])
                hn = hgr[2 * H + j] + b_hn[j]
                nv = tanh_(g[r * G + 2 * H + j] + rv * hn)
                hp = hr[j]
                g[r * G + j] = rv
                g[r * G + H + j] = zv
                g[r * G + 2 * H + j] = nv
                hr[j] = (1 - zv) * nv + zv * hp
            memcpy(out + (row + r) * ldo, hr, H * sizeof(floating))
        for r in range(n, rows):
            memset(out + (row + r) * ldo, 0, H * sizeof(floating))
    fl_denormals_restore(fpstate)


cdef void _gru_backward_shard(int T, Py_ssize_t B, int H, bint reverse, int block,
                              floating* gates, const floating* w_hh, floating* store,
                              const floating* dy, Py_ssize_t ldy, floating* dh, double* db,
                              Py_ssize_t r0, int rows, const int32_t* nact) noexcept nogil:
    cdef int s, t, n, r, j
    cdef Py_ssize_t row, G = 3 * H
    cdef floating* g
    cdef floating* st
    cdef floating* dhr
    cdef const floating* dyr
    cdef floating rv, zv, nv, hn, hp, dhv, dn
    cdef unsigned int fpstate = fl_denormals_off()
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = nact[t]
        row = t * B + r0
        g = gates + row * G
        st = store + row * G
        for r in range(n):
            dhr = dh + (r0 + r) * H
            dyr = dy + (row + r) * ldy
            for j in range(H):
                rv = g[r * G + j]
                zv = g[r * G + H + j]
                nv = g[r * G + 2 * H + j]
                hn = st[r * G + j]
                hp = st[r * G + H + j]
                dhv = dyr[j] + dhr[j]
                dn = dhv * (1 - zv) * (1 - nv * nv)
                g[r * G + j] = dn * hn * rv * (1 - rv)
                g[r * G + H + j] = dhv * (hp - nv) * zv * (1 - zv)
                g[r * G + 2 * H + j] = dn
                st[r * G + j] = g[r * G + j]
                st[r * G + H + j] = g[r * G + H + j]
                st[r * G + 2 * H + j] = dn * rv
                # dh_{t-1}: the direct path z * dh here, the products below
                dhr[j] = dhv * zv
            for j in range(<int> G):
                db[j] += g[r * G + j]
        if rows > n:
            memset(g + <Py_ssize_t> n * G, 0, <size_t> (rows - n) * G * sizeof(floating))
            memset(st + <Py_ssize_t> n * G, 0, <size_t> (rows - n) * G * sizeof(floating))
        # dh_{t-1} += [dr, dz, r * dn] W_hh
        if n > 0:
            gemm_rows(block, n, H, <int> G, <floating> 1, st, <int> G, w_hh, H, <floating> 1,
                      dh + r0 * H, H)
    fl_denormals_restore(fpstate)


def _gru_check_shard(Py_ssize_t T, Py_ssize_t B, int H, Py_ssize_t nact_len, Py_ssize_t r0,
                     int rows):
    if nact_len != T or r0 < 0 or rows < 0 or r0 + rows > B:
        raise ValueError("bad shard")
    if H < 1:
        raise ValueError("H must be positive")


def gru_forward_recurrent(floating[:, :, ::1] gates, const floating[:, ::1] w_hh_t,
                          const floating[::1] b_hn, floating[:, ::1] h,
                          floating[:, :, ::1] out, Py_ssize_t out_offset, store,
                          bint reverse, Py_ssize_t r0, int rows, const int32_t[::1] nact,
                          int block=0):
    """Run the GRU recurrence of one layer-direction over one shard (GIL released).

    ``store`` is a (T, B, 3H) array of the gates' dtype that keeps what the
    backward needs, or None (inference).
    """
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1]
    cdef int H = w_hh_t.shape[0]
    cdef floating[:, :, ::1] st
    cdef floating* stp = NULL
    cdef floating* hg
    if gates.shape[2] != 3 * H or w_hh_t.shape[1] != 3 * H or b_hn.shape[0] != H:
        raise ValueError("gates (T, B, 3H), w_hh_t (H, 3H) and b_hn (H,) do not match")
    if h.shape[0] != B or h.shape[1] != H:
        raise ValueError("h must be (B, H)")
    if out.shape[0] != T or out.shape[1] != B or out_offset < 0 or out_offset + H > out.shape[2]:
        raise ValueError("out must be (T, B, >= offset + H)")
    _gru_check_shard(T, B, H, nact.shape[0], r0, rows)
    if store is not None:
        st = store
        if st.shape[0] != T or st.shape[1] != B or st.shape[2] != 3 * H:
            raise ValueError("store must be (T, B, 3H)")
        stp = &st[0, 0, 0]
    if T == 0 or rows == 0:
        return
    hg = <floating*> malloc(<size_t> rows * 3 * H * sizeof(floating))
    if hg == NULL:
        raise MemoryError("gru_forward_recurrent: cannot allocate the step products")
    with nogil:
        _gru_forward_shard(<int> T, B, H, reverse, block, &gates[0, 0, 0], &w_hh_t[0, 0],
                           &b_hn[0], &h[0, 0], &out[0, 0, out_offset], out.shape[2], stp, hg,
                           r0, rows, &nact[0])
        free(hg)


def gru_backward_recurrent(floating[:, :, ::1] gates, const floating[:, ::1] w_hh,
                           floating[:, :, ::1] store, const floating[:, :, ::1] dy,
                           Py_ssize_t dy_offset, floating[:, ::1] dh, double[::1] db,
                           bint reverse, Py_ssize_t r0, int rows, const int32_t[::1] nact,
                           int block=0):
    """Backpropagate the GRU recurrence through time over one shard (GIL released).

    Leaves the input side's gate gradients in ``gates`` (their sums in
    ``db``) and the recurrent side's in ``store``; ``dh`` carries dh from the
    step after, and holds dh0 at the end.
    """
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1]
    cdef int H = w_hh.shape[1]
    if (gates.shape[2] != 3 * H or w_hh.shape[0] != 3 * H or db.shape[0] != 3 * H
            or store.shape[0] != T or store.shape[1] != B or store.shape[2] != 3 * H):
        raise ValueError("gates and store (T, B, 3H), w_hh (3H, H) and db (3H,) do not match")
    if dh.shape[0] != B or dh.shape[1] != H:
        raise ValueError("dh must be (B, H)")
    if dy.shape[0] != T or dy.shape[1] != B or dy_offset < 0 or dy_offset + H > dy.shape[2]:
        raise ValueError("dy must be (T, B, >= offset + H)")
    _gru_check_shard(T, B, H, nact.shape[0], r0, rows)
    if T == 0 or rows == 0:
        return
    with nogil:
        _gru_backward_shard(<int> T, B, H, reverse, block, &gates[0, 0, 0], &w_hh[0, 0],
                            &store[0, 0, 0], &dy[0, 0, dy_offset], dy.shape[2], &dh[0, 0],
                            &db[0], r0, rows, &nact[0])
