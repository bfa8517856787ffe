# A row chunk of the compiled training step: the packing of the weights, and
# a chunk's forward through every layer, readout, loss, backward through
# every layer and its partial weight gradients, in buffers of its own
# (GIL-free, no Python objects).  Each piece is a function of its own, which
# one thread runs in turn (_plan_chunk) or the threads of a chunk shared by
# hidden slices take as tickets (_train_slices.pxi), the same code either
# way.  Included after _train.pxi.


cdef void _plan_pack(_PlanC* p, const float** w_ih, const float** w_hh, const float** b_ih,
                     const float** b_hh) noexcept nogil:
    cdef int u
    for u in range(p.NL):
        fl_pack(p.cell, p.lay[u].NI, p.H, w_ih[u], w_hh[u], b_ih[u], b_hh[u], p.lay[u].wp,
                p.lay[u].bp)
        fl_pack_backward(p.cell, p.H, w_hh[u], p.lay[u].wpb)
        p.lay[u].w_ih = w_ih[u]


cdef struct _ChunkArgs:
    # what a chunk's run reads (the same for every thread sharing a sliced
    # chunk).  Row r of the batch is sample rows[r] of x, ycls, yval and
    # weight (rows NULL: sample r); masks: a plan with dropout's
    # (TrainPlan.chunk), else NULL.  T: the batch's steps (at most the
    # plan's); lengths: each batch row's (rows of a chunk by decreasing
    # length), or NULL for T each; xT: the steps of x's samples (at least T:
    # a set padded to its longest sequence)
    const float* x
    const int64_t* rows
    const int64_t* ycls
    const double* yval
    const double* weight
    double w_sum
    const float* w_out
    const float* b_out
    const float* masks
    int64_t T
    const int64_t* lengths
    int64_t xT


cdef int32_t _plan_chunk(_PlanC* p, int64_t c, const _ChunkArgs* a) noexcept nogil:
    # forward, readout, loss and backward of chunk c on this thread; its status
    cdef _ChunkC* ch = &p.ch[c]
    cdef int l, d
    _chunk_gather(p, ch, a)
    for l in range(p.L):
        for d in range(p.D):
            _chunk_pre_forward(p, ch, a, l * p.D + d)
            _chunk_forward(p, ch, a, l * p.D + d, NULL)
    _chunk_readout(p, ch, a)
    if ch.status[0] != 0:
        return ch.status[0]
    for l in range(p.L - 1, -1, -1):
        for d in range(p.D):
            _chunk_pre_backward(p, ch, l * p.D + d)
            _chunk_backward(p, ch, a, l * p.D + d, NULL)
        for d in range(p.D):
            _chunk_wgrad(p, ch, a, l * p.D + d, 0, p.G)
        if l > 0:
            _chunk_input_gradient(p, ch, a, l)
    return ch.status[0]


cdef inline const int32_t* _chunk_nact(const _ChunkC* ch, const _ChunkArgs* a) noexcept nogil:
    # the chunk's running rows at each step (those of a batch of lengths: set
    # by _chunk_gather)
    return ch.nact_var if a.lengths != NULL else ch.nact


cdef void _chunk_gather(const _PlanC* p, _ChunkC* ch, const _ChunkArgs* a) noexcept nogil:
    # the chunk's rows, time-major: xc[t, r] = x[q, t], q the sample of batch
    # row r0 + r; the rows running at each step (a batch of lengths)
    cdef int64_t t, r, k, q, n = ch.n, I = p.NI, r0 = ch.r0
    ch.status[0] = 0
    if a.lengths != NULL:
        # the chunk's rows running at step t: a prefix, those longer than t
        k = n
        for t in range(a.T):
            while k > 0 and a.lengths[r0 + k - 1] <= t:
                k -= 1
            ch.nact_var[t] = <int32_t> k
    for t in range(a.T):
        for r in range(n):
            q = a.rows[r0 + r] if a.rows != NULL else r0 + r
            memcpy(ch.xc + (t * n + r) * I, a.x + (q * a.xT + t) * I, I * sizeof(float))


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


cdef void _chunk_pre_forward(const _PlanC* p, _ChunkC* ch, const _ChunkArgs* a,
                             int u) noexcept nogil:
    # before the forward of layer-direction u: its input through dropout (the
    # first direction of a layer above the first), its cell state zeroed
    cdef int l = u // p.D
    if u % p.D == 0 and l > 0 and p.dropout:
        _apply_mask(p, ch, a.masks, l, ch.ly[l * p.D].xin, ch.ly[(l - 1) * p.D].outc, a.T)
    if p.cell == _C_LSTM:
        memset(ch.cbuf, 0, ch.n * p.ldc * sizeof(float))


cdef void _chunk_forward(const _PlanC* p, _ChunkC* ch, const _ChunkArgs* a, int u,
                         fl_gang* gang) noexcept nogil:
    # the forward of layer-direction u over the chunk's rows (with a gang:
    # shared by hidden slices with the threads calling with it)
    cdef fl_seq s
    cdef int l = u // p.D
    cdef int64_t n = ch.n, ni = p.lay[u].NI
    cdef bint lstm = p.cell == _C_LSTM
    s.cell = p.cell
    s.reverse = u % p.D
    s.exact = p.B >= fl_packed_tile_rows()
    s.T, s.B, s.NI, s.H = a.T, n, ni, p.H
    s.x = _layer_input(p, ch, l)
    s.ldx = ni
    s.xts = n * ni
    s.wp = p.lay[u].wp
    s.bp = p.lay[u].bp
    s.h0 = p.zeros  # the fit starts every sequence from zero states
    s.c = ch.cbuf if lstm else NULL
    s.ldc = p.ldc if lstm else 0
    s.out = ch.ly[u].outc
    s.ldo = p.D * p.H
    s.ots = n * p.D * p.H
    s.acts = ch.ly[u].acts
    s.aux = ch.ly[u].cstore
    s.nact = _chunk_nact(ch, a)
    s.toff = NULL
    fl_seq_run(&s, 0, n, 0, fl_packed_panels(s.cell, p.H), gang)


cdef void _chunk_pre_backward(const _PlanC* p, _ChunkC* ch, int u) noexcept nogil:
    # before the backward of layer-direction u: dL/dh of its final state (the
    # readout's for the top layer, else none), dL/dc of it (none) and its
    # bias sums zeroed
    cdef int l = u // p.D, d = u % p.D
    cdef int64_t r, j, n = ch.n, H = p.H, DH = p.D * p.H
    if l < p.L - 1:
        memset(ch.dh, 0, n * H * sizeof(float))
    elif p.D > 1:
        for r in range(n):
            memcpy(ch.dh + r * H, ch.dfeats + r * DH + d * H, H * sizeof(float))
    if p.cell == _C_LSTM:
        memset(ch.dc, 0, n * H * sizeof(float))
    for j in range(p.G):
        ch.ly[u].db[j] = 0


cdef void _chunk_backward(const _PlanC* p, _ChunkC* ch, const _ChunkArgs* a, int u,
                          fl_gang* gang) noexcept nogil:
    # the backward of layer-direction u (dL/dh of its final state in ch.dh;
    # the layer above's dL/dx in ch.dx, unless it is the top); with a gang,
    # shared by hidden slices with the threads calling with it
    cdef fl_bseq bs
    cdef int l = u // p.D, d = u % p.D
    cdef _ChunkLayerC* cl = &ch.ly[u]
    bs.cell = p.cell
    bs.exact = p.B >= fl_packed_tile_rows()
    bs.T, bs.B, bs.H = a.T, ch.n, p.H
    bs.c0 = p.zeros
    bs.dh = ch.dh
    bs.dc = ch.dc if p.cell == _C_LSTM else NULL
    bs.nact = _chunk_nact(ch, a)
    bs.toff = NULL
    bs.dbrow = NULL
    bs.reverse = d
    bs.dg = cl.acts
    bs.aux = cl.cstore
    bs.wp = p.lay[u].wpb
    if l == p.L - 1:
        bs.dy, bs.ldy = p.zero_h, 0
    else:
        bs.dy, bs.ldy = ch.dx + d * p.H, p.D * p.H
    if gang == NULL:
        fl_bseq_run(&bs, 0, ch.n, cl.db)
    else:
        fl_bseq_run_gang(&bs, 0, ch.n, cl.db, gang)


cdef void _chunk_wgrad(const _PlanC* p, _ChunkC* ch, const _ChunkArgs* a, int u, int64_t g0,
                       int64_t g1) noexcept nogil:
    # gate rows [g0, g1) of layer-direction u's partial weight gradients, after
    # its backward: dW_ih = dG^T X, dW_hh = dG_t^T h_(the step before t) (h of
    # the first step's = 0), on our own tiles (for these short blocks of rows,
    # faster than a BLAS GEMM that first repacks its operands; each entry is
    # summed over the rows in order, so a slice of rows gives the same bits);
    # a GRU's recurrent weights take its own dG_h, whose column sums go to
    # bias_hh apart
    cdef int l = u // p.D, d = u % p.D
    cdef int64_t n = ch.n, T = a.T, G = p.G, H = p.H, DH = p.D * p.H, ni = p.lay[u].NI, r, j
    cdef _ChunkLayerC* cl = &ch.ly[u]
    cdef const float* dgh = cl.cstore if p.cell == _C_GRU else cl.acts
    if g1 <= g0:
        return
    if p.cell == _C_GRU:
        for j in range(g0, g1):
            cl.db_hh[j] = 0
        for r in range(T * n):
            for j in range(g0, g1):
                cl.db_hh[j] += dgh[r * G + j]
    fl_wgrad(T * n, g1 - g0, ni, cl.acts + g0, G, _layer_input(p, ch, l), ni,
             cl.g_ih + g0 * ni, ni)
    if d == 0:
        fl_wgrad((T - 1) * n, g1 - g0, H, dgh + n * G + g0, G, cl.outc, DH, cl.g_hh + g0 * H, H)
    else:
        fl_wgrad((T - 1) * n, g1 - g0, H, dgh + g0, G, cl.outc + n * DH, DH, cl.g_hh + g0 * H, H)


cdef void _chunk_input_gradient(const _PlanC* p, _ChunkC* ch, const _ChunkArgs* a,
                                int l) noexcept nogil:
    # dL/dx of layer l > 0 = the sum over its directions of dG W_ih (in
    # direction order): the layer below's dL/dh at every step, into ch.dx,
    # through the dropout mask to the layer below's outputs
    cdef int d, u
    cdef int64_t n = ch.n, G = p.G, ni, T = a.T
    for d in range(p.D):
        u = l * p.D + d
        ni = p.lay[u].NI
        gemm(False, False, <int> (T * n), <int> ni, <int> G, <float> 1, ch.ly[u].acts, <int> G,
             p.lay[u].w_ih, <int> ni, <float> (1 if d > 0 else 0), ch.dx, <int> ni)
    if p.dropout:
        _apply_mask(p, ch, a.masks, l, ch.dx, ch.dx, T)


cdef void _chunk_readout(const _PlanC* p, _ChunkC* ch, const _ChunkArgs* a) noexcept nogil:
    # the readout, the loss and their gradients down to dL/dh of the top
    # layer's final states; status 1 if that gradient is not finite
    cdef int64_t t, r, j, k, q
    cdef int64_t r0 = ch.r0, n = ch.n, T = a.T, H = p.H, K = p.K, DH = p.D * p.H
    cdef const float* top = ch.ly[(p.L - 1) * p.D].outc
    cdef float* logits = ch.logits
    cdef float* dlogit = ch.dlogit
    cdef double* zrow = ch.zrow
    # the readout's input: the top layer's final state (each direction's)
    cdef const float* feats = top + (T - 1) * n * H if p.D == 1 and a.lengths == NULL \
        else ch.feats
    # and its gradient
    cdef float* dfeats = ch.dh if p.D == 1 else ch.dfeats
    cdef double m, lse, w, coef, lsum = 0, wsum = 0, dv
    if p.D > 1 or a.lengths != NULL:
        # [the forward direction's state at the row's last step, the reverse
        # one's at step 0], row by row
        for r in range(n):
            t = (a.lengths[r0 + r] if a.lengths != NULL else T) - 1
            memcpy(ch.feats + r * DH, top + (t * n + r) * DH, H * sizeof(float))
            if p.D > 1:
                memcpy(ch.feats + r * DH + H, top + r * DH + H, H * sizeof(float))
    # logits = feats W_out^T + b_out
    gemm(False, True, <int> n, <int> K, <int> DH, <float> 1, feats, <int> DH, a.w_out,
         <int> DH, <float> 0, logits, <int> K)
    for r in range(n):
        q = a.rows[r0 + r] if a.rows != NULL else r0 + r
        w = a.weight[q]
        wsum += w
        coef = w / a.w_sum if a.w_sum > 0 else 0.0
        if p.loss == _CE:
            m = -1e300
            for k in range(K):
                zrow[k] = <double> (logits[r * K + k] + a.b_out[k])
                if zrow[k] > m:
                    m = zrow[k]
            lse = 0
            for k in range(K):
                lse += exp(zrow[k] - m)
            lse = log(lse)
            lsum += w * (lse - (zrow[a.ycls[q]] - m))
            for k in range(K):
                dv = exp(zrow[k] - m - lse)
                if k == a.ycls[q]:
                    dv -= 1.0
                dlogit[r * K + k] = <float> (dv * coef)
        else:
            for k in range(K):
                dv = <double> (logits[r * K + k] + a.b_out[k]) - a.yval[q * K + k]
                lsum += w * dv * dv
                dlogit[r * K + k] = <float> (dv * coef * (2.0 / K))
    ch.part[0] = lsum
    ch.part[1] = wsum
    # readout gradients: dW_out = dlogit^T feats, db_out = column sums of dlogit
    fl_wgrad(n, K, DH, dlogit, K, feats, DH, ch.g_out, DH)
    for k in range(K):
        dv = 0
        for r in range(n):
            dv += dlogit[r * K + k]
        ch.db_out[k] = dv
    # dL/dfeats = dlogit W_out
    gemm(False, False, <int> n, <int> DH, <int> K, <float> 1, dlogit, <int> K, a.w_out,
         <int> DH, <float> 0, dfeats, <int> DH)
    for j in range(n * DH):
        if not isfinite(dfeats[j]):
            ch.status[0] = 1
            return
