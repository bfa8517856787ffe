# The compiled training step of a one-layer network on the packed kernels
# (float32): forward, readout, loss, backward and the weight gradients of one
# mini-batch in one call per row chunk, GIL released, on buffers planned once
# per shape.  Included after _packed.pxi, _backward.pxi and _wgrad.pxi.
#
# The batch is cut into fixed row chunks (from the batch size alone, as the
# layer cuts its shards); each chunk runs as a batch of its own, time-major in
# buffers of its own, and forms its own partial gradients (one A^T B per
# weight over its T * rows rows, on our own tiles: csrc/fl_wgrad.h);
# reduce() sums the partials in chunk order.
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
# the same, for code without the GIL
cdef int _C_LSTM = _TRAIN_LSTM, _C_GRU = _TRAIN_GRU

from libc.math cimport NAN, exp, isfinite, log


cdef struct _ChunkC:
    # one row chunk's buffers (owned by its TrainPlan's arrays)
    int64_t r0, n
    float* xc
    float* outc
    float* acts
    float* cstore
    float* cbuf
    float* dh
    float* dc
    float* logits
    float* dlogit
    float* g_ih
    float* g_hh
    float* g_out
    double* db
    double* db_out
    double* db_hh
    double* part
    double* zrow      # one row's logits in float64 (K)
    const int32_t* nact
    int32_t* status


cdef enum:
    # what a unit of the reduction sums (parameter order)
    _U_W_IH = 0
    _U_W_HH = 1
    _U_BIAS = 2     # bias_ih and bias_hh (their sums over chunks in float64)
    _U_W_OUT = 3
    _U_B_OUT = 4
    # a weight's unit: at most this many elements, so that the units are many
    # enough to split the reduction over threads
    _UNIT = 4096
    # the step's slices, at most (each a ticket of a run): the reduction and
    # the optimizer update are split into this many pieces
    _MAX_SLICES = 4


cdef struct _UnitC:
    # one piece of the reduction: elements [off, off + n) of one array
    int kind
    int64_t off, n


cdef struct _PlanC:
    # a TrainPlan as C code sees it: sizes, packed weights, its chunks
    int cell, loss
    int64_t NI, H, K, B, T, G, n_chunks, ldc
    float* wp
    float* bp
    float* wpb
    float* zeros
    float* zero_h
    _ChunkC* ch
    # the step in slices: units[su[s]:su[s + 1]] are slice s's part of the
    # reduction, each unit's squared norm in sq_units; slice s of the update
    # takes its share of the flat buffers; ok[s]: its updated weights are finite
    int64_t n_units, n_slices
    _UnitC* units
    int64_t* su
    double* sq_units
    int32_t* ok


cdef struct _Grads:
    # where the summed gradients go (views of the flat gradient buffer)
    float* w_ih
    float* w_hh
    float* b_ih
    float* b_hh
    float* w_out
    float* b_out


cdef struct _Flat:
    # the flat parameter, gradient and moment buffers and the undo copies
    float* p
    float* g
    float* m
    float* v
    float* s0
    float* s1
    float* s2
    int64_t n


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

    cdef _PlanC pc
    cdef list _keep

    def __cinit__(self, int cell, int64_t input_size, int64_t hidden_size, int64_t n_outputs,
                  int64_t batch, int64_t steps, int loss, bounds):
        cdef int64_t c, n, r0, r1, ldc
        cdef _ChunkC* ch
        self.pc.ch = NULL
        self.pc.units = NULL
        if fl_packed_width() == 0:
            raise RuntimeError("this kernel variant has no packed kernels")
        if cell not in (_TRAIN_LSTM, _TRAIN_RNN, _TRAIN_GRU):
            raise ValueError("unknown cell")
        if loss not in (LOSS_CROSS_ENTROPY, LOSS_SQUARED_ERROR):
            raise ValueError("unknown loss")
        if min(input_size, hidden_size, n_outputs, batch, steps) < 1:
            raise ValueError("TrainPlan: sizes must be positive")
        edges = np.asarray(bounds, dtype=np.int64)
        if (edges.ndim != 1 or edges.shape[0] < 2 or edges[0] != 0
                or edges[len(edges) - 1] != batch or np.any(np.diff(edges) < 1)):
            raise ValueError("TrainPlan: bounds must rise from 0 to the batch size")
        n_chunks = edges.shape[0] - 1
        ldc = fl_packed_panels(cell, hidden_size) * fl_packed_width()
        T, I, H, G, K = steps, input_size, hidden_size, fl_cell_gates(cell) * hidden_size, n_outputs
        aux = fl_cell_aux(cell)
        self.pc.ch = <_ChunkC*> PyMem_Malloc(n_chunks * sizeof(_ChunkC))
        if self.pc.ch == NULL:
            raise MemoryError()

        self._keep = []
        keep = self._keep_array  # an array this plan owns; its address for the C code
        cdef _PlanC* pc = &self.pc
        pc.cell, pc.loss = cell, loss
        pc.NI, pc.H, pc.K, pc.B, pc.T, pc.G = I, H, K, batch, T, G
        pc.n_chunks, pc.ldc = n_chunks, ldc
        pc.wp = _fptr(keep(aligned_empty(fl_packed_size(cell, input_size, hidden_size))))
        pc.bp = _fptr(keep(aligned_empty(fl_packed_bias_size(cell, hidden_size))))
        pc.wpb = _fptr(keep(aligned_empty(fl_backward_size(cell, hidden_size))))
        # dL/dh from outside the sequence (none), and h0 = c0 = 0 of every chunk
        # (read only, shared): zeros of the widest chunk
        pc.zero_h = _fptr(keep(np.zeros(hidden_size, np.float32)))
        pc.zeros = _fptr(keep(np.zeros(int(np.diff(edges).max()) * hidden_size, np.float32)))
        for c in range(n_chunks):
            r0, r1 = edges[c], edges[c + 1]
            n = r1 - r0
            ch = &self.pc.ch[c]
            ch.r0, ch.n = r0, n
            ch.xc = _fptr(keep(aligned_empty((T, n, I))))
            ch.outc = _fptr(keep(aligned_empty((T, n, H))))
            ch.acts = _fptr(keep(aligned_empty((T, n, G))))
            ch.cstore = _fptr(keep(aligned_empty((T, n, aux * H)))) if aux else NULL
            ch.cbuf = _fptr(keep(aligned_empty((n, ldc))))
            ch.dh = _fptr(keep(aligned_empty((n, H))))
            ch.dc = _fptr(keep(aligned_empty((n, H))))
            ch.logits = _fptr(keep(aligned_empty((n, K))))
            ch.dlogit = _fptr(keep(aligned_empty((n, K))))
            ch.g_ih = _fptr(keep(aligned_empty((G, I))))
            ch.g_hh = _fptr(keep(aligned_empty((G, H))))
            ch.g_out = _fptr(keep(aligned_empty((K, H))))
            ch.db = _dptr(keep(np.zeros(G)))
            # the column sums of dG_h (a cell keeping them apart), else db's
            ch.db_hh = _dptr(keep(np.zeros(G))) if cell == _TRAIN_GRU else ch.db
            ch.db_out = _dptr(keep(np.zeros(K)))
            ch.part = _dptr(keep(np.zeros(2)))  # weighted loss sum, weight sum
            ch.zrow = _dptr(keep(np.zeros(K)))
            ch.nact = <const int32_t*> cnp.PyArray_DATA(
                <cnp.ndarray> keep(np.full(T, n, dtype=np.int32)))
            ch.status = <int32_t*> cnp.PyArray_DATA(
                <cnp.ndarray> keep(np.zeros(1, dtype=np.int32)))
        self._slices(keep)

    cdef _slices(self, keep):
        # the reduction's units (fixed by the shapes, so the squared norm's
        # order is too) and their split into slices of about equal size
        cdef _PlanC* pc = &self.pc
        cdef int64_t G = pc.G, H = pc.H, K = pc.K, I = pc.NI, u, s, total, acc
        sizes = [(_U_W_IH, G * I), (_U_W_HH, G * H), (_U_BIAS, G), (_U_W_OUT, K * H),
                 (_U_B_OUT, K)]
        units = []
        for kind, n in sizes:
            if kind in (_U_BIAS, _U_B_OUT):
                units.append((kind, 0, n))
            else:
                units.extend((kind, o, min(_UNIT, n - o)) for o in range(0, n, _UNIT))
        pc.n_units = len(units)
        pc.units = <_UnitC*> PyMem_Malloc(pc.n_units * sizeof(_UnitC))
        if pc.units == NULL:
            raise MemoryError()
        for u, (kind, o, n) in enumerate(units):
            pc.units[u].kind, pc.units[u].off, pc.units[u].n = kind, o, n
        total = sum(n * (2 if kind == _U_BIAS else 1) for kind, _, n in units)
        pc.n_slices = max(1, min(_MAX_SLICES, total // _UNIT, pc.n_units))
        su = keep(np.zeros(pc.n_slices + 1, dtype=np.int64))
        pc.su = <int64_t*> cnp.PyArray_DATA(<cnp.ndarray> su)
        # slice s ends at the first unit where the elements so far reach
        # (s + 1) / n_slices of them (and every slice has a unit)
        s, acc = 0, 0
        for u in range(pc.n_units):
            acc += pc.units[u].n * (2 if pc.units[u].kind == _U_BIAS else 1)
            if (s < pc.n_slices - 1 and u + 1 < pc.n_units
                    and acc * pc.n_slices >= (s + 1) * total):
                s += 1
                pc.su[s] = u + 1
        pc.n_slices = s + 1
        pc.su[pc.n_slices] = pc.n_units
        pc.sq_units = _dptr(keep(np.zeros(pc.n_units)))
        pc.ok = <int32_t*> cnp.PyArray_DATA(
            <cnp.ndarray> keep(np.ones(pc.n_slices, dtype=np.int32)))

    # the plan's shape, as the C code reads it
    @property
    def cell(self):
        return self.pc.cell

    @property
    def loss(self):
        return self.pc.loss

    @property
    def NI(self):
        return self.pc.NI

    @property
    def H(self):
        return self.pc.H

    @property
    def K(self):
        return self.pc.K

    @property
    def B(self):
        return self.pc.B

    @property
    def T(self):
        return self.pc.T

    @property
    def G(self):
        return self.pc.G

    @property
    def n_chunks(self):
        return self.pc.n_chunks

    @property
    def n_slices(self):
        """Pieces of the step (the reduction and the update) a run's threads share."""
        return self.pc.n_slices

    def _keep_array(self, a):
        self._keep.append(a)
        return a

    def __dealloc__(self):
        PyMem_Free(self.pc.ch)
        PyMem_Free(self.pc.units)

    cdef _PlanC* plan_c(self):
        return &self.pc

    def pack(self, const float[:, ::1] w_ih, const float[:, ::1] w_hh, const float[::1] b_ih,
             const float[::1] b_hh):
        """Pack the current weights for this mini-batch's forward and backward."""
        cdef int64_t G = self.pc.G
        if (w_ih.shape[0] != G or w_ih.shape[1] != self.pc.NI or w_hh.shape[0] != G
                or w_hh.shape[1] != self.pc.H or b_ih.shape[0] != G or b_hh.shape[0] != G):
            raise ValueError("TrainPlan.pack: weight shapes do not match the plan")
        with nogil:
            _plan_pack(&self.pc, &w_ih[0, 0], &w_hh[0, 0], &b_ih[0], &b_hh[0])

    def chunk(self, int64_t c, const float[:, :, ::1] x, const int64_t[::1] target_class,
              const double[:, ::1] target_value, const double[::1] weight, double w_sum,
              const float[:, ::1] w_out, const float[::1] b_out):
        """Forward, loss and backward of chunk ``c`` (GIL released); 0, or 1 if the
        gradient of the recurrent features is not finite."""
        cdef int64_t B = self.pc.B, K = self.pc.K, r
        cdef int32_t st
        if not 0 <= c < self.pc.n_chunks:
            raise ValueError("TrainPlan.chunk: no such chunk")
        if (x.shape[0] != B or x.shape[1] != self.pc.T or x.shape[2] != self.pc.NI
                or weight.shape[0] != B):
            raise ValueError("TrainPlan.chunk: x or weight does not match the plan")
        if w_out.shape[0] != K or w_out.shape[1] != self.pc.H or b_out.shape[0] != K:
            raise ValueError("TrainPlan.chunk: the readout does not match the plan")
        cdef const int64_t* ycls = NULL
        cdef const double* yval = NULL
        if self.pc.loss == LOSS_CROSS_ENTROPY:
            if target_class is None or target_class.shape[0] != B:
                raise ValueError("TrainPlan.chunk: one class index per row is needed")
            for r in range(self.pc.ch[c].r0, self.pc.ch[c].r0 + self.pc.ch[c].n):
                if not 0 <= target_class[r] < K:
                    raise ValueError("TrainPlan.chunk: a class index is out of range")
            ycls = &target_class[0]
        elif target_value is None or target_value.shape[0] != B or target_value.shape[1] != K:
            raise ValueError("TrainPlan.chunk: targets must be (batch, n_outputs)")
        else:
            yval = &target_value[0, 0]
        with nogil:
            st = _plan_chunk(&self.pc, c, &x[0, 0, 0], NULL, ycls, yval, &weight[0], w_sum,
                             &w_out[0, 0], &b_out[0])
        return st

    def status_codes(self):
        """The chunks' status of their last run (0: finite)."""
        return [int(self.pc.ch[c].status[0]) for c in range(self.pc.n_chunks)]

    def reduce(self, float[:, ::1] d_w_ih, float[:, ::1] d_w_hh, float[::1] d_b_ih,
               float[::1] d_b_hh, float[:, ::1] d_w_out, float[::1] d_b_out):
        """Sum the chunks' partial gradients in chunk order into the given arrays.

        Returns ``(loss, squared norm)``: the squared global L2 norm of the
        gradients, in float64, summed per array and then in array order.
        """
        cdef double sq
        cdef _Grads d
        self._check(d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_out, d_b_out)
        d = _Grads(&d_w_ih[0, 0], &d_w_hh[0, 0], &d_b_ih[0], &d_b_hh[0], &d_w_out[0, 0],
                   &d_b_out[0])
        with nogil:
            sq = _plan_reduce(&self.pc, &d)
        return _plan_loss(&self.pc), sq

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
        cdef double loss, sq
        cdef int code
        cdef int64_t t = optimizer.t + 1
        cdef _Grads d
        cdef _Flat f
        self._check(d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_out, d_b_out)
        d = _Grads(&d_w_ih[0, 0], &d_w_hh[0, 0], &d_b_ih[0], &d_b_hh[0], &d_w_out[0, 0],
                   &d_b_out[0])
        f = _flat_of(p, g, m, v, save)
        cdef fl_adam_args a = _adam_args(optimizer.learning_rate, optimizer.beta_1,
                                         optimizer.beta_2, optimizer.epsilon,
                                         optimizer.weight_decay, optimizer._decoupled, t,
                                         0.0, False)
        with nogil:
            code = _plan_step(&self.pc, &d, &f, &a, clip_norm, &loss, &sq)
        if code == 0:
            optimizer.t = t  # no bytecode between the update and this: one step, whole
        return loss, sq, code

    cdef int _check(self, float[:, ::1] d_w_ih, float[:, ::1] d_w_hh, float[::1] d_b_ih,
                    float[::1] d_b_hh, float[:, ::1] d_w_out, float[::1] d_b_out) except -1:
        cdef int64_t G = self.pc.G, I = self.pc.NI, H = self.pc.H, K = self.pc.K
        if (d_w_ih.shape[0] != G or d_w_ih.shape[1] != I or d_w_hh.shape[0] != G
                or d_w_hh.shape[1] != H or d_b_ih.shape[0] != G or d_b_hh.shape[0] != G
                or d_w_out.shape[0] != K or d_w_out.shape[1] != H or d_b_out.shape[0] != K):
            raise ValueError("TrainPlan.reduce: gradient shapes do not match the plan")
        return 0


cdef _Flat _flat_of(p, g, m, v, save) except *:
    cdef _Flat f
    bufs = [p, g, m, v] + list(save)
    n = p.shape[0]
    for arr in bufs:
        if (type(arr) is not np.ndarray or arr.ndim != 1 or arr.shape[0] != n
                or arr.dtype != np.float32 or not arr.flags.c_contiguous):
            raise ValueError("TrainPlan.reduce_adam: flat float32 buffers of one length")
    f.p, f.g, f.m, f.v = _fptr(p), _fptr(g), _fptr(m), _fptr(v)
    f.s0, f.s1, f.s2 = _fptr(save[0]), _fptr(save[1]), _fptr(save[2])
    f.n = n
    return f


cdef void _plan_pack(_PlanC* p, const float* w_ih, const float* w_hh, const float* b_ih,
                     const float* b_hh) noexcept nogil:
    fl_pack(p.cell, p.NI, p.H, w_ih, w_hh, b_ih, b_hh, p.wp, p.bp)
    fl_pack_backward(p.cell, p.H, w_hh, p.wpb)


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
    s.T, s.B, s.NI, s.H = p.T, n, p.NI, H
    s.x = ch.xc
    s.ldx = p.NI
    s.xts = n * p.NI
    s.wp = p.wp
    s.bp = p.bp
    s.h0 = p.zeros  # the fit starts every sequence from zero states
    s.c = ch.cbuf if lstm else NULL
    s.ldc = p.ldc if lstm else 0
    s.out = ch.outc
    s.ldo = H
    s.ots = n * H
    s.acts = ch.acts
    s.aux = ch.cstore
    s.nact = ch.nact
    s.toff = NULL
    bs.cell = p.cell
    bs.reverse = 0
    bs.exact = s.exact
    bs.T, bs.B, bs.H = p.T, n, H
    bs.dg = ch.acts
    bs.aux = ch.cstore
    bs.c0 = p.zeros
    bs.dy = p.zero_h
    bs.ldy = 0
    bs.dh = ch.dh
    bs.dc = ch.dc if lstm else NULL
    bs.wp = p.wpb
    bs.nact = ch.nact
    bs.toff = NULL
    bs.dbrow = NULL
    _chunk_run(&s, &bs, p, ch, x, rows, ycls, yval, weight, w_sum, w_out, b_out)
    return ch.status[0]


cdef void _chunk_run(fl_seq* s, fl_bseq* bs, const _PlanC* p, _ChunkC* ch, const float* x,
                     const int64_t* rows, const int64_t* ycls, const double* yval,
                     const double* weight, double w_sum, const float* w_out,
                     const float* b_out) noexcept nogil:
    cdef int64_t t, r, j, k, q
    cdef int64_t r0 = ch.r0, n = ch.n, T = p.T, I = p.NI, H = p.H, K = p.K, G = p.G
    cdef int loss = p.loss
    cdef bint lstm = p.cell == _C_LSTM
    cdef float* xc = ch.xc
    cdef float* outc = ch.outc
    cdef float* acts = ch.acts
    cdef float* dh = ch.dh
    cdef float* logits = ch.logits
    cdef float* dlogit = ch.dlogit
    cdef double* db = ch.db
    cdef double* zrow = ch.zrow
    # the recurrent weights' gate gradients after the backward: acts, or a
    # cell's own dG_h (GRU), whose column sums then go to bias_hh apart
    cdef const float* dgh = ch.cstore if p.cell == _C_GRU else acts
    cdef const float* feats = outc + (T - 1) * n * H
    cdef double m, lse, w, coef, lsum = 0, wsum = 0, d
    ch.status[0] = 0
    # the chunk's rows, time-major: xc[t, r] = x[q, t], q the sample of batch row r0 + r
    for t in range(T):
        for r in range(n):
            q = rows[r0 + r] if rows != NULL else r0 + r
            memcpy(xc + (t * n + r) * I, x + (q * T + t) * I, I * sizeof(float))
    if lstm:
        memset(ch.cbuf, 0, n * p.ldc * sizeof(float))
    fl_seq_run(s, 0, n, 0, fl_packed_panels(s.cell, H), NULL)
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
    if lstm:
        memset(ch.dc, 0, n * H * sizeof(float))  # dL/dc_T = 0
    for j in range(G):
        db[j] = 0
    fl_bseq_run(bs, 0, n, db)
    if p.cell == _C_GRU:
        for j in range(G):
            ch.db_hh[j] = 0
        for r in range(T * n):
            for j in range(G):
                ch.db_hh[j] += dgh[r * G + j]
    # weight gradients: dW_ih = dG^T X, dW_hh = dG_t^T h_{t-1} (h_{-1} = 0)
    # (on our own tiles: for these short blocks of rows, faster than a BLAS GEMM
    # that first repacks its operands)
    fl_wgrad(T * n, G, I, acts, G, xc, I, ch.g_ih, I)
    fl_wgrad((T - 1) * n, G, H, dgh + n * G, G, outc, H, ch.g_hh, H)
