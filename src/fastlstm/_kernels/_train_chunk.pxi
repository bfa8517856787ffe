# A row chunk of the compiled training step: the packing of the weights, and
# a chunk's forward through every layer, readout, loss, backward through
# every layer and its partial weight gradients, in buffers of its own
# (GIL-free, no Python objects).  Included after _train.pxi.


cdef void _plan_pack(_PlanC* p, const float** w_ih, const float** w_hh, const float** b_ih,
                     const float** b_hh) noexcept nogil:
    cdef int l
    for l in range(p.L):
        fl_pack(p.cell, p.lay[l].NI, p.H, w_ih[l], w_hh[l], b_ih[l], b_hh[l], p.lay[l].wp,
                p.lay[l].bp)
        fl_pack_backward(p.cell, p.H, w_hh[l], p.lay[l].wpb)
        p.lay[l].w_ih = w_ih[l]


cdef int32_t _plan_chunk(_PlanC* p, int64_t c, const float* x, const int64_t* rows,
                         const int64_t* ycls, const double* yval, const double* weight,
                         double w_sum, const float* w_out, const float* b_out) noexcept nogil:
    # forward, readout, loss and backward of chunk c; its status.  Row r of the
    # batch is sample rows[r] of x, ycls, yval and weight (rows NULL: sample r).
    cdef _ChunkC* ch = &p.ch[c]
    cdef int64_t n = ch.n, H = p.H
    cdef bint lstm = p.cell == _C_LSTM
    cdef fl_seq s
    cdef fl_bseq bs
    s.cell = p.cell
    s.reverse = 0
    s.exact = p.B >= fl_packed_tile_rows()
    s.T, s.B, s.H = p.T, n, H
    s.h0 = p.zeros  # the fit starts every sequence from zero states
    s.c = ch.cbuf if lstm else NULL
    s.ldc = p.ldc if lstm else 0
    s.ldo = H
    s.ots = n * H
    s.nact = ch.nact
    s.toff = NULL
    bs.cell = p.cell
    bs.reverse = 0
    bs.exact = s.exact
    bs.T, bs.B, bs.H = p.T, n, H
    bs.c0 = p.zeros
    bs.dh = ch.dh
    bs.dc = ch.dc if lstm else NULL
    bs.nact = ch.nact
    bs.toff = NULL
    bs.dbrow = NULL
    _chunk_run(&s, &bs, p, ch, x, rows, ycls, yval, weight, w_sum, w_out, b_out)
    return ch.status[0]


cdef inline void _seq_layer(fl_seq* s, const _PlanC* p, _ChunkC* ch, int l) noexcept nogil:
    # the forward of layer l over the chunk's rows: its input is the chunk's
    # x (the first layer) or the outputs of the layer below
    cdef int64_t ni = p.lay[l].NI
    s.NI = ni
    s.x = ch.xc if l == 0 else ch.ly[l - 1].outc
    s.ldx = ni
    s.xts = ch.n * ni
    s.wp = p.lay[l].wp
    s.bp = p.lay[l].bp
    s.out = ch.ly[l].outc
    s.acts = ch.ly[l].acts
    s.aux = ch.ly[l].cstore
    if s.c != NULL:
        memset(s.c, 0, ch.n * p.ldc * sizeof(float))
    fl_seq_run(s, 0, ch.n, 0, fl_packed_panels(s.cell, p.H), NULL)


cdef void _backward_layer(fl_bseq* bs, const _PlanC* p, _ChunkC* ch, int l) noexcept nogil:
    # the backward of layer l (dL/dh of its final state in ch.dh; the layer
    # above's dL/dx in ch.dx, unless it is the top), its partial weight
    # gradients, and dL/dx of its input into ch.dx for the layer below
    cdef int64_t n = ch.n, T = p.T, G = p.G, H = p.H, ni = p.lay[l].NI, r, j
    cdef _ChunkLayerC* cl = &ch.ly[l]
    # the recurrent weights' gate gradients after the backward: acts, or a
    # cell's own dG_h (GRU), whose column sums then go to bias_hh apart
    cdef const float* dgh = cl.cstore if p.cell == _C_GRU else cl.acts
    cdef const float* xin = ch.xc if l == 0 else ch.ly[l - 1].outc
    bs.dg = cl.acts
    bs.aux = cl.cstore
    bs.wp = p.lay[l].wpb
    if l == p.L - 1:
        bs.dy, bs.ldy = p.zero_h, 0
    else:
        bs.dy, bs.ldy = ch.dx, H
    if bs.dc != NULL:
        memset(bs.dc, 0, n * H * sizeof(float))  # dL/dc_T = 0
    for j in range(G):
        cl.db[j] = 0
    fl_bseq_run(bs, 0, n, cl.db)
    if p.cell == _C_GRU:
        for j in range(G):
            cl.db_hh[j] = 0
        for r in range(T * n):
            for j in range(G):
                cl.db_hh[j] += dgh[r * G + j]
    # weight gradients: dW_ih = dG^T X, dW_hh = dG_t^T h_{t-1} (h_{-1} = 0)
    # (on our own tiles: for these short blocks of rows, faster than a BLAS GEMM
    # that first repacks its operands)
    fl_wgrad(T * n, G, ni, cl.acts, G, xin, ni, cl.g_ih, ni)
    fl_wgrad((T - 1) * n, G, H, dgh + n * G, G, cl.outc, H, cl.g_hh, H)
    if l > 0:
        # dL/dx = dG W_ih: the layer below's dL/dh at every step
        gemm(False, False, <int> (T * n), <int> ni, <int> G, <float> 1, cl.acts, <int> G,
             p.lay[l].w_ih, <int> ni, <float> 0, ch.dx, <int> ni)
        memset(ch.dh, 0, n * H * sizeof(float))  # its final state feeds nothing else


cdef void _chunk_run(fl_seq* s, fl_bseq* bs, const _PlanC* p, _ChunkC* ch, const float* x,
                     const int64_t* rows, const int64_t* ycls, const double* yval,
                     const double* weight, double w_sum, const float* w_out,
                     const float* b_out) noexcept nogil:
    cdef int64_t t, r, j, k, q
    cdef int64_t r0 = ch.r0, n = ch.n, T = p.T, I = p.NI, H = p.H, K = p.K
    cdef int loss = p.loss, l
    cdef float* xc = ch.xc
    cdef float* dh = ch.dh
    cdef float* logits = ch.logits
    cdef float* dlogit = ch.dlogit
    cdef double* zrow = ch.zrow
    cdef const float* feats = ch.ly[p.L - 1].outc + (T - 1) * n * H
    cdef double m, lse, w, coef, lsum = 0, wsum = 0, d
    ch.status[0] = 0
    # the chunk's rows, time-major: xc[t, r] = x[q, t], q the sample of batch row r0 + r
    for t in range(T):
        for r in range(n):
            q = rows[r0 + r] if rows != NULL else r0 + r
            memcpy(xc + (t * n + r) * I, x + (q * T + t) * I, I * sizeof(float))
    for l in range(p.L):
        _seq_layer(s, p, ch, l)
    # logits = h_T W_out^T + b_out
    gemm(False, True, <int> n, <int> K, <int> H, <float> 1, feats, <int> H, w_out, <int> H,
         <float> 0, logits, <int> K)
    for r in range(n):
        q = rows[r0 + r] if rows != NULL else r0 + r
        w = weight[q]
        wsum += w
        coef = w / w_sum if w_sum > 0 else 0.0
        if loss == _CE:
            m = -1e300
            for k in range(K):
                zrow[k] = <double> (logits[r * K + k] + b_out[k])
                if zrow[k] > m:
                    m = zrow[k]
            lse = 0
            for k in range(K):
                lse += exp(zrow[k] - m)
            lse = log(lse)
            lsum += w * (lse - (zrow[ycls[q]] - m))
            for k in range(K):
                d = exp(zrow[k] - m - lse)
                if k == ycls[q]:
                    d -= 1.0
                dlogit[r * K + k] = <float> (d * coef)
        else:
            for k in range(K):
                d = <double> (logits[r * K + k] + b_out[k]) - yval[q * K + k]
                lsum += w * d * d
                dlogit[r * K + k] = <float> (d * coef * (2.0 / K))
    ch.part[0] = lsum
    ch.part[1] = wsum
    # readout gradients: dW_out = dlogit^T h_T, db_out = column sums of dlogit
    fl_wgrad(n, K, H, dlogit, K, feats, H, ch.g_out, H)
    for k in range(K):
        d = 0
        for r in range(n):
            d += dlogit[r * K + k]
        ch.db_out[k] = d
    # dh_T = dlogit W_out
    gemm(False, False, <int> n, <int> H, <int> K, <float> 1, dlogit, <int> K, w_out, <int> H,
         <float> 0, dh, <int> H)
    for j in range(n * H):
        if not isfinite(dh[j]):
            ch.status[0] = 1
            return
    for l in range(p.L - 1, -1, -1):
        _backward_layer(bs, p, ch, l)
