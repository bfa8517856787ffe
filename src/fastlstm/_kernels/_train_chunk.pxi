# A row chunk of the compiled training step: the packing of the weights, and
# a chunk's forward through every layer, readout, loss, backward through
# every layer and its partial weight gradients, in buffers of its own
# (GIL-free, no Python objects).  Included after _train.pxi.


cdef void _plan_pack(_PlanC* p, const float** w_ih, const float** w_hh, const float** b_ih,
                     const float** b_hh) noexcept nogil:
    cdef int u
    for u in range(p.NL):
        fl_pack(p.cell, p.lay[u].NI, p.H, w_ih[u], w_hh[u], b_ih[u], b_hh[u], p.lay[u].wp,
                p.lay[u].bp)
        fl_pack_backward(p.cell, p.H, w_hh[u], p.lay[u].wpb)
        p.lay[u].w_ih = w_ih[u]


cdef int32_t _plan_chunk(_PlanC* p, int64_t c, const float* x, const int64_t* rows,
                         const int64_t* ycls, const double* yval, const double* weight,
                         double w_sum, const float* w_out, const float* b_out,
                         const float* masks, int64_t T, const int64_t* lengths,
                         int64_t xT) noexcept nogil:
    # forward, readout, loss and backward of chunk c; its status.  Row r of the
    # batch is sample rows[r] of x, ycls, yval and weight (rows NULL: sample r);
    # masks: a plan with dropout's (TrainPlan.chunk), else NULL.  T: the
    # batch's steps (at most the plan's); lengths: each batch row's (rows of a
    # chunk by decreasing length), or NULL for T each; xT: the steps of x's
    # samples (at least T: a set padded to its longest sequence)
    cdef _ChunkC* ch = &p.ch[c]
    cdef int64_t n = ch.n, H = p.H
    cdef bint lstm = p.cell == _C_LSTM
    cdef fl_seq s
    cdef fl_bseq bs
    cdef int64_t t, r, k
    cdef const int32_t* nact = ch.nact
    if lengths != NULL:
        # the chunk's rows running at step t: a prefix, those longer than t
        k = n
        for t in range(T):
            while k > 0 and lengths[ch.r0 + k - 1] <= t:
                k -= 1
            ch.nact_var[t] = <int32_t> k
        nact = ch.nact_var
    s.cell = p.cell
    s.exact = p.B >= fl_packed_tile_rows()
    s.T, s.B, s.H = T, n, H
    s.h0 = p.zeros  # the fit starts every sequence from zero states
    s.c = ch.cbuf if lstm else NULL
    s.ldc = p.ldc if lstm else 0
    s.ldo = p.D * H
    s.ots = n * p.D * H
    s.nact = nact
    s.toff = NULL
    bs.cell = p.cell
    bs.exact = s.exact
    bs.T, bs.B, bs.H = T, n, H
    bs.c0 = p.zeros
    bs.dh = ch.dh
    bs.dc = ch.dc if lstm else NULL
    bs.nact = nact
    bs.toff = NULL
    bs.dbrow = NULL
    _chunk_run(&s, &bs, p, ch, x, rows, ycls, yval, weight, w_sum, w_out, b_out, masks,
               lengths, xT)
    return ch.status[0]


cdef inline const float* _layer_input(const _PlanC* p, _ChunkC* ch, int l) noexcept nogil:
    # what layer l reads: the chunk's x (the first layer) or the outputs of
    # the layer below (both its directions, side by side; after dropout, if any)
    if l == 0:
        return ch.xc
    return ch.ly[l * p.D].xin if p.dropout else ch.ly[(l - 1) * p.D].outc


cdef void _apply_mask(const _PlanC* p, _ChunkC* ch, const float* masks, int l, float* dst,
                      const float* src, int64_t T) noexcept nogil:
    # dst = src * the dropout mask of layer l's input, row by row of the chunk
    # (rows r0 + r of the batch's (T, B, D*H) mask), one float32 product each
    cdef int64_t t, r, j, n = ch.n, DH = p.D * p.H, o
    cdef const float* m
    for t in range(T):
        for r in range(n):
            m = masks + (((l - 1) * T + t) * p.B + ch.r0 + r) * DH
            o = (t * n + r) * DH
            for j in range(DH):
                dst[o + j] = src[o + j] * m[j]


cdef inline void _seq_layer(fl_seq* s, const _PlanC* p, _ChunkC* ch, int l, int d) noexcept nogil:
    # the forward of direction d of layer l over the chunk's rows
    cdef int u = l * p.D + d
    cdef int64_t ni = p.lay[u].NI
    s.reverse = d
    s.NI = ni
    s.x = _layer_input(p, ch, l)
    s.ldx = ni
    s.xts = ch.n * ni
    s.wp = p.lay[u].wp
    s.bp = p.lay[u].bp
    s.out = ch.ly[u].outc
    s.acts = ch.ly[u].acts
    s.aux = ch.ly[u].cstore
    if s.c != NULL:
        memset(s.c, 0, ch.n * p.ldc * sizeof(float))
    fl_seq_run(s, 0, ch.n, 0, fl_packed_panels(s.cell, p.H), NULL)


cdef void _backward_layer(fl_bseq* bs, const _PlanC* p, _ChunkC* ch, int l,
                          int d) noexcept nogil:
    # the backward of direction d of layer l (dL/dh of its final state in
    # ch.dh; the layer above's dL/dx in ch.dx, unless it is the top) and its
    # partial weight gradients
    cdef int u = l * p.D + d
    cdef int64_t n = ch.n, T = bs.T, G = p.G, H = p.H, DH = p.D * p.H, ni = p.lay[u].NI, r, j
    cdef _ChunkLayerC* cl = &ch.ly[u]
    # the recurrent weights' gate gradients after the backward: acts, or a
    # cell's own dG_h (GRU), whose column sums then go to bias_hh apart
    cdef const float* dgh = cl.cstore if p.cell == _C_GRU else cl.acts
    bs.reverse = d
    bs.dg = cl.acts
    bs.aux = cl.cstore
    bs.wp = p.lay[u].wpb
    if l == p.L - 1:
        bs.dy, bs.ldy = p.zero_h, 0
    else:
        bs.dy, bs.ldy = ch.dx + d * H, DH
    if bs.dc != NULL:
        memset(bs.dc, 0, n * H * sizeof(float))  # dL/dc of the final state = 0
    for j in range(G):
        cl.db[j] = 0
    fl_bseq_run(bs, 0, n, cl.db)
    if p.cell == _C_GRU:
        for j in range(G):
            cl.db_hh[j] = 0
        for r in range(T * n):
            for j in range(G):
                cl.db_hh[j] += dgh[r * G + j]
    # weight gradients: dW_ih = dG^T X, dW_hh = dG_t^T h_(the step before t)
    # (h of the first step's = 0) (on our own tiles: for these short blocks of
    # rows, faster than a BLAS GEMM that first repacks its operands)
    fl_wgrad(T * n, G, ni, cl.acts, G, _layer_input(p, ch, l), ni, cl.g_ih, ni)
    if d == 0:
        fl_wgrad((T - 1) * n, G, H, dgh + n * G, G, cl.outc, DH, cl.g_hh, H)
    else:
        fl_wgrad((T - 1) * n, G, H, dgh, G, cl.outc + n * DH, DH, cl.g_hh, H)


cdef void _input_gradient(const _PlanC* p, _ChunkC* ch, int l, int64_t T) noexcept nogil:
    # dL/dx of layer l > 0 = the sum over its directions of dG W_ih (in
    # direction order): the layer below's dL/dh at every step, into ch.dx
    cdef int d, u
    cdef int64_t n = ch.n, G = p.G, ni
    for d in range(p.D):
        u = l * p.D + d
        ni = p.lay[u].NI
        gemm(False, False, <int> (T * n), <int> ni, <int> G, <float> 1, ch.ly[u].acts, <int> G,
             p.lay[u].w_ih, <int> ni, <float> (1 if d > 0 else 0), ch.dx, <int> ni)


cdef void _chunk_run(fl_seq* s, fl_bseq* bs, const _PlanC* p, _ChunkC* ch, const float* x,
                     const int64_t* rows, const int64_t* ycls, const double* yval,
                     const double* weight, double w_sum, const float* w_out,
                     const float* b_out, const float* masks,
                     const int64_t* lengths, int64_t xT) noexcept nogil:
    cdef int64_t t, r, j, k, q
    cdef int64_t r0 = ch.r0, n = ch.n, T = s.T, I = p.NI, H = p.H, K = p.K, DH = p.D * p.H
    cdef int loss = p.loss, l, dd
    cdef const float* top = ch.ly[(p.L - 1) * p.D].outc
    cdef float* xc = ch.xc
    cdef float* dh = ch.dh
    cdef float* logits = ch.logits
    cdef float* dlogit = ch.dlogit
    cdef double* zrow = ch.zrow
    # the readout's input: the top layer's final state (each direction's)
    cdef const float* feats = top + (T - 1) * n * H if p.D == 1 and lengths == NULL \
        else ch.feats
    # and its gradient
    cdef float* dfeats = dh if p.D == 1 else ch.dfeats
    cdef double m, lse, w, coef, lsum = 0, wsum = 0, d
    ch.status[0] = 0
    # the chunk's rows, time-major: xc[t, r] = x[q, t], q the sample of batch row r0 + r
    for t in range(T):
        for r in range(n):
            q = rows[r0 + r] if rows != NULL else r0 + r
            memcpy(xc + (t * n + r) * I, x + (q * xT + t) * I, I * sizeof(float))
    for l in range(p.L):
        if l > 0 and p.dropout:
            _apply_mask(p, ch, masks, l, ch.ly[l * p.D].xin, ch.ly[(l - 1) * p.D].outc, T)
        for dd in range(p.D):
            _seq_layer(s, p, ch, l, dd)
    if p.D > 1 or lengths != NULL:
        # [the forward direction's state at the row's last step, the reverse
        # one's at step 0], row by row
        for r in range(n):
            t = (lengths[r0 + r] if lengths != NULL else T) - 1
            memcpy(ch.feats + r * DH, top + (t * n + r) * DH, H * sizeof(float))
            if p.D > 1:
                memcpy(ch.feats + r * DH + H, top + r * DH + H, H * sizeof(float))
    # logits = feats W_out^T + b_out
    gemm(False, True, <int> n, <int> K, <int> DH, <float> 1, feats, <int> DH, w_out, <int> DH,
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
    # readout gradients: dW_out = dlogit^T feats, db_out = column sums of dlogit
    fl_wgrad(n, K, DH, dlogit, K, feats, DH, ch.g_out, DH)
    for k in range(K):
        d = 0
        for r in range(n):
            d += dlogit[r * K + k]
        ch.db_out[k] = d
    # dL/dfeats = dlogit W_out
    gemm(False, False, <int> n, <int> DH, <int> K, <float> 1, dlogit, <int> K, w_out, <int> DH,
         <float> 0, dfeats, <int> DH)
    for j in range(n * DH):
        if not isfinite(dfeats[j]):
            ch.status[0] = 1
            return
    for l in range(p.L - 1, -1, -1):
        for dd in range(p.D):
            # dL/dh of the final state: the readout's (the top layer), else none
            if l < p.L - 1:
                memset(dh, 0, n * H * sizeof(float))
            elif p.D > 1:
                for r in range(n):
                    memcpy(dh + r * H, dfeats + r * DH + dd * H, H * sizeof(float))
            _backward_layer(bs, p, ch, l, dd)
        if l > 0:
            _input_gradient(p, ch, l, T)
            if p.dropout:  # through the mask to the layer below's outputs
                _apply_mask(p, ch, masks, l, ch.dx, ch.dx, T)
