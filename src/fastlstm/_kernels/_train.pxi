# The compiled training step of a one-layer network on the packed kernels
# (float32): forward, readout, loss, backward and the weight gradients of one
# mini-batch in one call per row chunk, GIL released, on buffers planned once
# per shape.  Included after _packed.pxi and _backward.pxi.
#
# The batch is cut into fixed row chunks (from the batch size alone, as the
# layer cuts its shards); each chunk runs as a batch of its own, time-major in
# buffers of its own, and forms its own partial gradients (one GEMM per
# weight over its T * rows rows); reduce() sums the partials in chunk order.
# Which thread runs which chunk therefore changes nothing in the results.

LOSS_CROSS_ENTROPY = 0
LOSS_SQUARED_ERROR = 1

cdef enum:
    _CE = 0   # LOSS_CROSS_ENTROPY, for code without the GIL

# the cells the compiled step runs (their recurrent weights take dG as it is)
_TRAIN_LSTM = _cell_code("lstm")
_TRAIN_RNN = _cell_code("rnn")
# the GRU's recurrent weights take their own gate gradients, dG_h, which its
# backward leaves in the aux store (csrc/fl_cell_gru.h)
_TRAIN_GRU = _cell_code("gru")

from libc.math cimport NAN, exp, isfinite, log


cdef struct _Parts:
    float** pih
    double** pdb   # per chunk: the bias sums of dG, of the readout, of dG_h
    double lsum, wsum


cdef inline float* _fptr(object a):
    return <float*> cnp.PyArray_DATA(<cnp.ndarray> a)


cdef inline double* _dptr(object a):
    return <double*> cnp.PyArray_DATA(<cnp.ndarray> a)


cdef class TrainPlan:
    """Workspaces and partial gradients of one (cell, sizes, batch, steps, loss) shape.

    ``bounds`` lists the row chunks' edges (0 = b_0 < ... < b_n = batch).
    :meth:`pack` packs the current weights (once per mini-batch), then
    :meth:`chunk` runs one chunk (any thread, any order, each chunk once),
    then :meth:`reduce` writes the gradients and returns the loss.
    """

    cdef readonly int cell, loss
    cdef readonly int64_t NI, H, K, B, T, G, n_chunks
    cdef int64_t npan, ldc
    cdef list _keep
    cdef object wp, bp, wpb, zero_h, zeros
    cdef object bounds
    cdef list xc, outc, acts, cstore, cbuf, dh, dc, logits, dlogit
    cdef list g_ih, g_hh, g_out, db, db_out, loss_part, nact, status, db_hh

    def __cinit__(self, int cell, int64_t input_size, int64_t hidden_size, int64_t n_outputs,
                  int64_t batch, int64_t steps, int loss, bounds):
        cdef int64_t c, n, r0, r1
        if fl_packed_width() == 0:
            raise RuntimeError("this kernel variant has no packed kernels")
        if cell not in (_TRAIN_LSTM, _TRAIN_RNN, _TRAIN_GRU):
            raise ValueError("unknown cell")
        if loss not in (LOSS_CROSS_ENTROPY, LOSS_SQUARED_ERROR):
            raise ValueError("unknown loss")
        if min(input_size, hidden_size, n_outputs, batch, steps) < 1:
            raise ValueError("TrainPlan: sizes must be positive")
        self.bounds = np.asarray(bounds, dtype=np.int64)
        if (self.bounds.ndim != 1 or self.bounds.shape[0] < 2 or self.bounds[0] != 0
                or self.bounds[-1] != batch or np.any(np.diff(self.bounds) < 1)):
            raise ValueError("TrainPlan: bounds must rise from 0 to the batch size")
        self.cell, self.loss = cell, loss
        self.NI, self.H, self.K, self.B, self.T = input_size, hidden_size, n_outputs, batch, steps
        self.G = fl_cell_gates(cell) * hidden_size
        self.n_chunks = self.bounds.shape[0] - 1
        self.npan = fl_packed_panels(cell, hidden_size)
        self.ldc = self.npan * fl_packed_width()
        self.wp = aligned_empty(fl_packed_size(cell, input_size, hidden_size))
        self.bp = aligned_empty(fl_packed_bias_size(cell, hidden_size))
        self.wpb = aligned_empty(fl_backward_size(cell, hidden_size))
        self.zero_h = aligned_empty(hidden_size)
        self.zero_h[...] = 0
        # h0 and c0 of every chunk (read only, shared): zeros of the widest chunk
        self.zeros = aligned_empty(int(np.diff(self.bounds).max()) * hidden_size)
        self.zeros[...] = 0
        T, I, H, G, K = steps, input_size, hidden_size, self.G, n_outputs
        f32 = np.float32
        self.xc, self.outc, self.acts, self.cstore, self.cbuf = [], [], [], [], []
        self.dh, self.dc, self.logits, self.dlogit = [], [], [], []
        self.g_ih, self.g_hh, self.g_out, self.db, self.db_out = [], [], [], [], []
        self.loss_part, self.nact, self.status = [], [], []
        self.db_hh = []  # the column sums of dG_h (a cell keeping them apart), else unused
        for c in range(self.n_chunks):
            r0, r1 = self.bounds[c], self.bounds[c + 1]
            n = r1 - r0
            self.xc.append(aligned_empty((T, n, I)))
            self.outc.append(aligned_empty((T, n, H)))
            self.acts.append(aligned_empty((T, n, G)))
            self.cstore.append(aligned_empty((T, n, fl_cell_aux(cell) * H)) if fl_cell_aux(cell) else None)
            self.cbuf.append(aligned_empty((n, self.ldc)))
            self.dh.append(aligned_empty((n, H)))
            self.dc.append(aligned_empty((n, H)))
            self.logits.append(aligned_empty((n, K)))
            self.dlogit.append(aligned_empty((n, K)))
            self.g_ih.append(aligned_empty((G, I)))
            self.g_hh.append(aligned_empty((G, H)))
            self.g_out.append(aligned_empty((K, H)))
            self.db.append(np.zeros(G))
            self.db_hh.append(np.zeros(G))
            self.db_out.append(np.zeros(K))
            self.loss_part.append(np.zeros(2))  # weighted loss sum, weight sum
            self.nact.append(np.full(T, n, dtype=np.int32))
            self.status.append(np.zeros(1, dtype=np.int32))

    def pack(self, const float[:, ::1] w_ih, const float[:, ::1] w_hh, const float[::1] b_ih,
             const float[::1] b_hh):
        """Pack the current weights for this mini-batch's forward and backward."""
        cdef int64_t G = self.G
        if (w_ih.shape[0] != G or w_ih.shape[1] != self.NI or w_hh.shape[0] != G
                or w_hh.shape[1] != self.H or b_ih.shape[0] != G or b_hh.shape[0] != G):
            raise ValueError("TrainPlan.pack: weight shapes do not match the plan")
        cdef float* wp = _fptr(self.wp)
        cdef float* bp = _fptr(self.bp)
        cdef float* wpb = _fptr(self.wpb)
        with nogil:
            fl_pack(self.cell, self.NI, self.H, &w_ih[0, 0], &w_hh[0, 0], &b_ih[0], &b_hh[0],
                    wp, bp)
            fl_pack_backward(self.cell, self.H, &w_hh[0, 0], wpb)

    def chunk(self, int64_t c, const float[:, :, ::1] x, const int64_t[::1] target_class,
              const double[:, ::1] target_value, const double[::1] weight, double w_sum,
              const float[:, ::1] w_out, const float[::1] b_out):
        """Forward, loss and backward of chunk ``c`` (GIL released); 0, or 1 if the
        gradient of the recurrent features is not finite."""
        cdef int64_t B = self.B, T = self.T, I = self.NI, H = self.H, K = self.K, G = self.G
        if not 0 <= c < self.n_chunks:
            raise ValueError("TrainPlan.chunk: no such chunk")
        if x.shape[0] != B or x.shape[1] != T or x.shape[2] != I or weight.shape[0] != B:
            raise ValueError("TrainPlan.chunk: x or weight does not match the plan")
        if w_out.shape[0] != K or w_out.shape[1] != H or b_out.shape[0] != K:
            raise ValueError("TrainPlan.chunk: the readout does not match the plan")
        if self.loss == LOSS_CROSS_ENTROPY:
            if target_class is None or target_class.shape[0] != B:
                raise ValueError("TrainPlan.chunk: one class index per row is needed")
        elif target_value is None or target_value.shape[0] != B or target_value.shape[1] != K:
            raise ValueError("TrainPlan.chunk: targets must be (batch, n_outputs)")
        cdef int64_t r0 = self.bounds[c], r1 = self.bounds[c + 1], n = r1 - r0
        cdef float* xc = _fptr(self.xc[c])
        cdef float* outc = _fptr(self.outc[c])
        cdef float* acts = _fptr(self.acts[c])
        cdef float* cstore = NULL if self.cstore[c] is None else _fptr(self.cstore[c])
        cdef float* cbuf = _fptr(self.cbuf[c])
        cdef float* dh = _fptr(self.dh[c])
        cdef float* dc = _fptr(self.dc[c])
        cdef float* logits = _fptr(self.logits[c])
        cdef float* dlogit = _fptr(self.dlogit[c])
        cdef float* g_ih = _fptr(self.g_ih[c])
        cdef float* g_hh = _fptr(self.g_hh[c])
        cdef float* g_out = _fptr(self.g_out[c])
        cdef double* db = _dptr(self.db[c])
        cdef double* db_out = _dptr(self.db_out[c])
        cdef double* db_hh = _dptr(self.db_hh[c]) if self.cell == _TRAIN_GRU else NULL
        cdef double* part = _dptr(self.loss_part[c])
        cdef const int32_t* nact = <const int32_t*> cnp.PyArray_DATA(<cnp.ndarray> self.nact[c])
        cdef int32_t* status = <int32_t*> cnp.PyArray_DATA(<cnp.ndarray> self.status[c])
        cdef const int64_t* ycls = NULL
        cdef const double* yval = NULL
        cdef int64_t r
        if self.loss == LOSS_CROSS_ENTROPY:
            ycls = &target_class[0]
            for r in range(r0, r1):
                if not 0 <= target_class[r] < K:
                    raise ValueError("TrainPlan.chunk: a class index is out of range")
        else:
            yval = &target_value[0, 0]
        cdef fl_seq s
        cdef fl_bseq bs
        s.cell = self.cell
        s.reverse = 0
        s.exact = B >= fl_packed_tile_rows()
        s.T, s.B, s.NI, s.H = T, n, I, H
        s.x = xc
        s.ldx = I
        s.xts = n * I
        s.wp = _fptr(self.wp)
        s.bp = _fptr(self.bp)
        s.h0 = _fptr(self.zeros)  # the fit starts every sequence from zero states
        s.c = cbuf if self.cell == _TRAIN_LSTM else NULL
        s.ldc = self.ldc if self.cell == _TRAIN_LSTM else 0
        s.out = outc
        s.ldo = H
        s.ots = n * H
        s.acts = acts
        s.aux = cstore
        s.nact = nact
        s.toff = NULL
        bs.cell = self.cell
        bs.reverse = 0
        bs.exact = s.exact
        bs.T, bs.B, bs.H = T, n, H
        bs.dg = acts
        bs.aux = cstore
        bs.c0 = _fptr(self.zeros)
        bs.dy = _fptr(self.zero_h)
        bs.ldy = 0
        bs.dh = dh
        bs.dc = dc if self.cell == _TRAIN_LSTM else NULL
        bs.wp = _fptr(self.wpb)
        bs.nact = nact
        bs.toff = NULL
        bs.dbrow = NULL
        cdef bint lstm = self.cell == _TRAIN_LSTM
        cdef int loss = self.loss
        cdef const float* dgh = cstore if self.cell == _TRAIN_GRU else acts
        with nogil:
            _chunk_run(&s, &bs, &x[0, 0, 0], r0, n, T, I, H, K, G, loss, ycls, yval,
                       &weight[0], w_sum, &w_out[0, 0], &b_out[0], xc, outc, acts, cbuf,
                       self.ldc, dh, dc, logits, dlogit, g_ih, g_hh, g_out, db, db_out,
                       part, status, lstm, dgh, db_hh)
        return status[0]

    def status_codes(self):
        """The chunks' status of their last run (0: finite)."""
        return [int(st[0]) for st in self.status]

    def reduce(self, float[:, ::1] d_w_ih, float[:, ::1] d_w_hh, float[::1] d_b_ih,
               float[::1] d_b_hh, float[:, ::1] d_w_out, float[::1] d_b_out):
        """Sum the chunks' partial gradients in chunk order into the given arrays.

        Returns ``(loss, squared norm)``: the squared global L2 norm of the
        gradients, in float64, summed per array and then in array order.
        """
        cdef double loss, sq
        self._check(d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_out, d_b_out)
        cdef _Parts parts = self._parts()
        with nogil:
            sq = self._sum_into(&parts, &d_w_ih[0, 0], &d_w_hh[0, 0], &d_b_ih[0], &d_b_hh[0],
                                &d_w_out[0, 0], &d_b_out[0])
        PyMem_Free(parts.pih)
        PyMem_Free(parts.pdb)
        return self._loss(parts), sq

    def reduce_adam(self, float[:, ::1] d_w_ih, float[:, ::1] d_w_hh, float[::1] d_b_ih,
                    float[::1] d_b_hh, float[:, ::1] d_w_out, float[::1] d_b_out,
                    p, g, m, v, save, optimizer, double clip_norm):
        """:meth:`reduce`, then the checks, clipping and one Adam step, in one GIL-free call.

        ``p``, ``g``, ``m``, ``v``: the flat float32 parameter, gradient and
        moment buffers the gradient arrays are views of; ``save``: three
        scratch buffers as long; ``optimizer``: the Adam (or AdamW) whose
        hyper-parameters and step count ``t`` apply (``t`` is advanced on a
        step that was taken); ``clip_norm`` < 0: no clipping.  Returns
        ``(loss, squared norm, code)``: 0 the step was taken; 1 the loss, 2 the
        gradient of the recurrent features, 3 the gradient norm is not finite
        (nothing updated); 4 the update made the parameters non-finite (undone:
        parameters and moments are as before).
        """
        cdef double loss, sq, norm
        cdef int code = 0, ok
        cdef int64_t c, n, t = optimizer.t + 1
        cdef fl_adam_args a
        self._check(d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_out, d_b_out)
        bufs = [p, g, m, v] + list(save)
        n = p.shape[0]
        for arr in bufs:
            if (type(arr) is not np.ndarray or arr.ndim != 1 or arr.shape[0] != n
                    or arr.dtype != np.float32 or not arr.flags.c_contiguous):
                raise ValueError("TrainPlan.reduce_adam: flat float32 buffers of one length")
        cdef float* pp = _fptr(p)
        cdef float* gp = _fptr(g)
        cdef float* mp = _fptr(m)
        cdef float* vp = _fptr(v)
        cdef float* s0 = _fptr(save[0])
        cdef float* s1 = _fptr(save[1])
        cdef float* s2 = _fptr(save[2])
        a = _adam_args(optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2,
                       optimizer.epsilon, optimizer.weight_decay, optimizer._decoupled, t,
                       0.0, False)
        cdef _Parts parts = self._parts()
        loss = self._loss(parts)
        cdef int any_status = 0
        for c in range(self.n_chunks):
            any_status |= (<int32_t*> cnp.PyArray_DATA(<cnp.ndarray> self.status[c]))[0] != 0
        with nogil:
            sq = self._sum_into(&parts, &d_w_ih[0, 0], &d_w_hh[0, 0], &d_b_ih[0], &d_b_hh[0],
                                &d_w_out[0, 0], &d_b_out[0])
            norm = c_sqrt(sq) if sq >= 0 else NAN
            if not isfinite(loss):
                code = 1
            elif any_status:
                code = 2
            elif not isfinite(norm):
                code = 3
            else:
                if clip_norm >= 0 and norm > clip_norm:
                    a.do_clip = 1
                    a.clip_scale = clip_norm / (norm + 1e-6)
                ok = fl_adam_f32(pp, gp, mp, vp, n, &a, s0, s1, s2)
                if not ok:  # undo: the parameters and moments as they were
                    memcpy(pp, s0, n * sizeof(float))
                    memcpy(mp, s1, n * sizeof(float))
                    memcpy(vp, s2, n * sizeof(float))
                    code = 4
        PyMem_Free(parts.pih)
        PyMem_Free(parts.pdb)
        if code == 0:
            optimizer.t = t  # no bytecode between the update and this: one step, whole
        return loss, sq, code

    cdef int _check(self, float[:, ::1] d_w_ih, float[:, ::1] d_w_hh, float[::1] d_b_ih,
                    float[::1] d_b_hh, float[:, ::1] d_w_out, float[::1] d_b_out) except -1:
        cdef int64_t G = self.G, I = self.NI, H = self.H, K = self.K
        if (d_w_ih.shape[0] != G or d_w_ih.shape[1] != I or d_w_hh.shape[0] != G
                or d_w_hh.shape[1] != H or d_b_ih.shape[0] != G or d_b_hh.shape[0] != G
                or d_w_out.shape[0] != K or d_w_out.shape[1] != H or d_b_out.shape[0] != K):
            raise ValueError("TrainPlan.reduce: gradient shapes do not match the plan")
        return 0

    cdef _Parts _parts(self) except *:
        # the chunks' partial gradients' addresses and their loss sums
        cdef _Parts parts
        cdef int64_t c
        parts.lsum = 0
        parts.wsum = 0
        parts.pih = <float**> PyMem_Malloc(self.n_chunks * 3 * sizeof(float*))
        parts.pdb = <double**> PyMem_Malloc(self.n_chunks * 3 * sizeof(double*))
        if parts.pih == NULL or parts.pdb == NULL:
            PyMem_Free(parts.pih)
            PyMem_Free(parts.pdb)
            raise MemoryError()
        for c in range(self.n_chunks):
            parts.pih[3 * c] = _fptr(self.g_ih[c])
            parts.pih[3 * c + 1] = _fptr(self.g_hh[c])
            parts.pih[3 * c + 2] = _fptr(self.g_out[c])
            parts.pdb[3 * c] = _dptr(self.db[c])
            parts.pdb[3 * c + 1] = _dptr(self.db_out[c])
            parts.pdb[3 * c + 2] = _dptr(self.db_hh[c] if self.cell == _TRAIN_GRU else self.db[c])
            # read through the pointers: indexing the arrays costs microseconds each
            parts.lsum += _dptr(self.loss_part[c])[0]
            parts.wsum += _dptr(self.loss_part[c])[1]
        return parts

    cdef double _loss(self, _Parts parts):
        if parts.wsum <= 0:
            return 0.0
        if self.loss == LOSS_CROSS_ENTROPY:
            return parts.lsum / parts.wsum
        return parts.lsum / (parts.wsum * self.K)

    cdef double _sum_into(self, _Parts* parts, float* d_w_ih, float* d_w_hh, float* d_b_ih,
                          float* d_b_hh, float* d_w_out, float* d_b_out) noexcept nogil:
        # the partials summed in chunk order; the squared norm (float64, per array, in order)
        cdef int64_t c, j, G = self.G, I = self.NI, H = self.H, K = self.K
        cdef double v, sq = 0, sq_b = 0, sq_bh = 0, sq_bo = 0
        cdef float** pih = parts.pih
        cdef double** pdb = parts.pdb
        _sum_chunks(d_w_ih, pih, 0, 3, self.n_chunks, G * I)
        _sum_chunks(d_w_hh, pih, 1, 3, self.n_chunks, G * H)
        _sum_chunks(d_w_out, pih, 2, 3, self.n_chunks, K * H)
        for j in range(G):
            v = 0
            for c in range(self.n_chunks):
                v += pdb[3 * c][j]
            d_b_ih[j] = <float> v
            sq_b += <double> d_b_ih[j] * <double> d_b_ih[j]
            v = 0
            for c in range(self.n_chunks):
                v += pdb[3 * c + 2][j]
            d_b_hh[j] = <float> v
            sq_bh += <double> d_b_hh[j] * <double> d_b_hh[j]
        for j in range(K):
            v = 0
            for c in range(self.n_chunks):
                v += pdb[3 * c + 1][j]
            d_b_out[j] = <float> v
            sq_bo += <double> d_b_out[j] * <double> d_b_out[j]
        # parameter order: weight_ih, weight_hh, bias_ih, bias_hh, head weight, head bias
        sq = _sum_squares(d_w_ih, G * I) + _sum_squares(d_w_hh, G * H)
        return sq + sq_b + sq_bh + _sum_squares(d_w_out, K * H) + sq_bo


cdef double _sum_squares(const float* a, int64_t n) noexcept nogil:
    cdef double s = 0
    cdef int64_t j
    for j in range(n):
        s += <double> a[j] * <double> a[j]
    return s


cdef void _sum_chunks(float* out, float** parts, int64_t which, int64_t stride,
                      int64_t n_chunks, int64_t n) noexcept nogil:
    # out = ((p_0 + p_1) + p_2) + ...: chunk order, whatever thread formed each
    cdef int64_t c, j
    cdef float* p
    memcpy(out, parts[which], n * sizeof(float))
    for c in range(1, n_chunks):
        p = parts[c * stride + which]
        for j in range(n):
            out[j] += p[j]


cdef void _chunk_run(fl_seq* s, fl_bseq* bs, const float* x, int64_t r0, int64_t n, int64_t T,
                     int64_t I, int64_t H, int64_t K, int64_t G, int loss, const int64_t* ycls,
                     const double* yval, const double* weight, double w_sum, const float* w_out,
                     const float* b_out, float* xc, float* outc, float* acts, float* cbuf,
                     int64_t ldc, float* dh, float* dc, float* logits, float* dlogit,
                     float* g_ih, float* g_hh, float* g_out, double* db, double* db_out,
                     double* part, int32_t* status, bint lstm, const float* dgh,
                     double* db_hh) noexcept nogil:
    # dgh: the recurrent weights' gate gradients after the backward (acts, or a
    # cell's own dG_h); db_hh: NULL, or their column sums for bias_hh
    cdef int64_t t, r, j, k
    cdef const float* feats = outc + (T - 1) * n * H
    cdef double m, z, lse, w, coef, lsum = 0, wsum = 0, d
    cdef double* zrow
    status[0] = 0
    # the chunk's rows, time-major: xc[t, r] = x[r0 + r, t]
    for t in range(T):
        for r in range(n):
            memcpy(xc + (t * n + r) * I, x + ((r0 + r) * T + t) * I, I * sizeof(float))
    if lstm:
        memset(cbuf, 0, n * ldc * sizeof(float))
    fl_seq_run(s, 0, n, 0, fl_packed_panels(s.cell, H), NULL)
    # logits = h_T W_out^T + b_out
    gemm(False, True, <int> n, <int> K, <int> H, <float> 1, feats, <int> H, w_out, <int> H,
         <float> 0, logits, <int> K)
    zrow = <double*> malloc(K * sizeof(double))
    if zrow == NULL:
        status[0] = 2
        return
    for r in range(n):
        w = weight[r0 + r]
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
            lsum += w * (lse - (zrow[ycls[r0 + r]] - m))
            for k in range(K):
                d = exp(zrow[k] - m - lse)
                if k == ycls[r0 + r]:
                    d -= 1.0
                dlogit[r * K + k] = <float> (d * coef)
        else:
            for k in range(K):
                d = <double> (logits[r * K + k] + b_out[k]) - yval[(r0 + r) * K + k]
                lsum += w * d * d
                dlogit[r * K + k] = <float> (d * coef * (2.0 / K))
    free(zrow)
    part[0] = lsum
    part[1] = wsum
    # readout gradients: dW_out = dlogit^T h_T, db_out = column sums of dlogit
    gemm(True, False, <int> K, <int> H, <int> n, <float> 1, dlogit, <int> K, feats, <int> H,
         <float> 0, g_out, <int> H)
    for k in range(K):
        d = 0
        for r in range(n):
            d += dlogit[r * K + k]
        db_out[k] = d
    # dh_T = dlogit W_out
    gemm(False, False, <int> n, <int> H, <int> K, <float> 1, dlogit, <int> K, w_out, <int> H,
         <float> 0, dh, <int> H)
    for j in range(n * H):
        if not isfinite(dh[j]):
            status[0] = 1
            return
    memset(dc, 0, n * H * sizeof(float))  # dL/dc_T = 0
    for j in range(G):
        db[j] = 0
    fl_bseq_run(bs, 0, n, db)
    if db_hh != NULL:
        for j in range(G):
            db_hh[j] = 0
        for r in range(T * n):
            for j in range(G):
                db_hh[j] += dgh[r * G + j]
    # weight gradients: dW_ih = dG^T X, dW_hh = dG_t^T h_{t-1} (h_{-1} = 0)
    gemm(True, False, <int> G, <int> I, <int> (T * n), <float> 1, acts, <int> G, xc, <int> I,
         <float> 0, g_ih, <int> I)
    if T > 1:
        gemm(True, False, <int> G, <int> H, <int> ((T - 1) * n), <float> 1, dgh + n * G,
             <int> G, outc, <int> H, <float> 0, g_hh, <int> H)
    else:
        memset(g_hh, 0, G * H * sizeof(float))
