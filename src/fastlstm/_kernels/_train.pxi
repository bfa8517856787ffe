# The compiled training step of a network of stacked layers on the packed
# kernels (float32): forward, readout, loss, backward and the weight gradients
# of one mini-batch in one call per row chunk, GIL released, on buffers
# planned once per shape.  Included after _packed.pxi, _backward.pxi and
# _wgrad.pxi.
#
# The batch is cut into fixed row chunks (from the batch size alone, as the
# layer cuts its shards); each chunk runs as a batch of its own, time-major in
# buffers of its own, and forms its own partial gradients (one A^T B per
# weight over its T * rows rows, on our own tiles: csrc/fl_wgrad.h);
# reduce() sums the partials in chunk order.  A stack's layers run one after
# the other on the chunk's rows: each layer's outputs (of both directions,
# side by side, for a bidirectional stack) are the next one's inputs, and
# the backward hands each layer below dL/dx of the one above.
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


cdef enum:
    # the layers of a stack the compiled step runs, at most, counting each
    # direction of a bidirectional layer as one
    _MAX_LAYERS = 8


cdef struct _LayerC:
    # one layer (direction) of the plan: its input size and packed weights (owned by the
    # plan's arrays); w_ih: its input weights as pack() was given them, which
    # the backward reads for the layer below's dL/dx
    int64_t NI
    float* wp
    float* bp
    float* wpb
    const float* w_ih


cdef struct _ChunkLayerC:
    # one layer (direction)'s buffers of a row chunk: outputs (its columns of
    # the layer's (T, n, D*H) outputs, rows D*H apart), gates, aux store,
    # partials; xin: with dropout, the layer's input after it (T, n, D*H), in
    # the first direction's entry of every layer above the first, else NULL
    float* xin
    float* outc
    float* acts
    float* cstore
    float* g_ih
    float* g_hh
    double* db
    double* db_hh


cdef struct _ChunkC:
    # one row chunk's buffers (owned by its TrainPlan's arrays)
    int64_t r0, n
    float* xc
    float* dx         # a stack: dL/dx of the layer above, (T, n, D*H); else NULL
    float* feats      # the readout's input, gathered (bidirectional, or lengths), (n, D*H)
    float* dfeats     # bidirectional: its gradient, (n, 2H); else NULL
    float* cbuf
    float* dh
    float* dc
    float* logits
    float* dlogit
    float* g_out
    double* db_out
    double* part
    double* zrow      # one row's logits in float64 (K)
    const int32_t* nact  # every row running at every step
    int32_t* nact_var    # a batch of lengths: the rows running at each step
    int32_t* status
    _ChunkLayerC ly[_MAX_LAYERS]


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
    # one piece of the reduction: elements [off, off + n) of one array (of
    # layer `layer` for a layer's kind)
    int kind, layer
    int64_t off, n


cdef struct _PlanC:
    # a TrainPlan as C code sees it: sizes, packed weights, its chunks
    int cell, loss
    # L layers of D directions: NL = L * D layer-directions, lay[l * D + d];
    # dropout: the inputs of the layers above the first are masked
    int64_t NI, H, K, B, T, G, L, D, NL, n_chunks, ldc
    bint dropout
    _LayerC lay[_MAX_LAYERS]
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
    # hidden slices (_train_slices.pxi): slices > 1 shares the one row chunk
    # among the threads of n_tickets = slices tickets, by hidden units, in
    # phases of tickets from sync's counter: phase f is tickets
    # [ph_start[f], ph_start[f + 1]) of kind ph_kind[f] on layer-direction (or
    # layer) ph_arg[f]; ph_of[k] the phase of ticket k; each layer-direction's
    # forward and backward on gangs[2u], gangs[2u + 1] of fchunk and bchunk
    # panels a ticket.  slices = 1: n_tickets = n_chunks, one thread each
    int64_t slices, n_tickets, fchunk, bchunk, n_phases
    int32_t* ph_kind
    int32_t* ph_arg
    int64_t* ph_start
    int32_t* ph_of
    char* gangs
    fl_gang* sync


cdef struct _Grads:
    # where the summed gradients go (views of the flat gradient buffer), per
    # layer, then the readout's
    float* w_ih[_MAX_LAYERS]
    float* w_hh[_MAX_LAYERS]
    float* b_ih[_MAX_LAYERS]
    float* b_hh[_MAX_LAYERS]
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
    """Workspaces and partial gradients of one (cell, sizes, batch, steps, loss, layers) shape.

    ``bounds`` lists the row chunks' edges (0 = b_0 < ... < b_n = batch);
    ``num_layers`` stacked layers, the first of ``input_size`` inputs, the
    others of ``hidden_size``.  :meth:`pack` packs the current weights (once
    per mini-batch), then :meth:`chunk` runs one chunk (any thread, any
    order, each chunk once), then :meth:`reduce` writes the gradients and
    returns the loss.  Weights and gradients come as a network lists them:
    each layer's input weights, recurrent weights and two biases, layer by
    layer, then the readout's weight and bias.  ``slices`` > 1 (a plan of one
    row chunk): the chunk runs shared by hidden units among the threads of
    :attr:`n_tickets` calls of :meth:`shared_chunk` (:meth:`chunk` still runs
    it on one thread, with the same bits).
    """

    cdef _PlanC pc
    cdef list _keep
    cdef void* gang_raw

    def __cinit__(self, int cell, int64_t input_size, int64_t hidden_size, int64_t n_outputs,
                  int64_t batch, int64_t steps, int loss, bounds, int num_layers=1,
                  int num_directions=1, bint dropout=False, int64_t slices=1):
        cdef int64_t c, n, r0, r1, ldc, ni, DH = num_directions * hidden_size
        cdef int l, u, NL = num_layers * num_directions
        cdef _ChunkC* ch
        cdef _ChunkLayerC* cl
        cdef float* outs = NULL
        self.pc.ch = NULL
        self.pc.units = NULL
        self.gang_raw = NULL
        if fl_packed_width() == 0:
            raise RuntimeError("this kernel variant has no packed kernels")
        if cell not in (_TRAIN_LSTM, _TRAIN_RNN, _TRAIN_GRU):
            raise ValueError("unknown cell")
        if loss not in (LOSS_CROSS_ENTROPY, LOSS_SQUARED_ERROR):
            raise ValueError("unknown loss")
        if min(input_size, hidden_size, n_outputs, batch, steps) < 1:
            raise ValueError("TrainPlan: sizes must be positive")
        if num_directions not in (1, 2):
            raise ValueError("TrainPlan: one or two directions")
        if not 1 <= num_layers or NL > _MAX_LAYERS:
            raise ValueError(f"TrainPlan: 1 to {_MAX_LAYERS} layers (each direction one)")
        edges = np.asarray(bounds, dtype=np.int64)
        if (edges.ndim != 1 or edges.shape[0] < 2 or edges[0] != 0
                or edges[len(edges) - 1] != batch or np.any(np.diff(edges) < 1)):
            raise ValueError("TrainPlan: bounds must rise from 0 to the batch size")
        n_chunks = edges.shape[0] - 1
        if slices < 1 or (slices > 1 and n_chunks > 1):
            raise ValueError("TrainPlan: hidden slices (slices > 1) share a plan's one row chunk")
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
        pc.L, pc.D, pc.NL = num_layers, num_directions, NL
        pc.dropout = dropout and num_layers > 1
        pc.n_chunks, pc.ldc = n_chunks, ldc
        for u in range(NL):
            ni = I if u < num_directions else DH
            pc.lay[u].NI = ni
            pc.lay[u].wp = _fptr(keep(aligned_empty(fl_packed_size(cell, ni, hidden_size))))
            pc.lay[u].bp = _fptr(keep(aligned_empty(fl_packed_bias_size(cell, hidden_size))))
            pc.lay[u].wpb = _fptr(keep(aligned_empty(fl_backward_size(cell, hidden_size))))
            pc.lay[u].w_ih = NULL
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
            ch.dx = _fptr(keep(aligned_empty((T, n, DH)))) if num_layers > 1 else NULL
            ch.feats = _fptr(keep(aligned_empty((n, DH))))
            ch.dfeats = _fptr(keep(aligned_empty((n, DH)))) if num_directions > 1 else NULL
            ch.cbuf = _fptr(keep(aligned_empty((n, ldc))))
            ch.dh = _fptr(keep(aligned_empty((n, H))))
            ch.dc = _fptr(keep(aligned_empty((n, H))))
            ch.logits = _fptr(keep(aligned_empty((n, K))))
            ch.dlogit = _fptr(keep(aligned_empty((n, K))))
            ch.g_out = _fptr(keep(aligned_empty((K, DH))))
            ch.db_out = _dptr(keep(np.zeros(K)))
            ch.part = _dptr(keep(np.zeros(2)))  # weighted loss sum, weight sum
            ch.zrow = _dptr(keep(np.zeros(K)))
            ch.nact = <const int32_t*> cnp.PyArray_DATA(
                <cnp.ndarray> keep(np.full(T, n, dtype=np.int32)))
            ch.nact_var = <int32_t*> cnp.PyArray_DATA(
                <cnp.ndarray> keep(np.zeros(T, dtype=np.int32)))
            ch.status = <int32_t*> cnp.PyArray_DATA(
                <cnp.ndarray> keep(np.zeros(1, dtype=np.int32)))
            for u in range(NL):
                cl = &ch.ly[u]
                if u % num_directions == 0:  # the layer's outputs, both directions
                    outs = _fptr(keep(aligned_empty((T, n, DH))))
                cl.outc = outs + (u % num_directions) * hidden_size
                cl.xin = NULL
                if pc.dropout and u >= num_directions and u % num_directions == 0:
                    cl.xin = _fptr(keep(aligned_empty((T, n, DH))))
                cl.acts = _fptr(keep(aligned_empty((T, n, G))))
                cl.cstore = _fptr(keep(aligned_empty((T, n, aux * H)))) if aux else NULL
                cl.g_ih = _fptr(keep(aligned_empty((G, pc.lay[u].NI))))
                cl.g_hh = _fptr(keep(aligned_empty((G, H))))
                cl.db = _dptr(keep(np.zeros(G)))
                # the column sums of dG_h (a cell keeping them apart), else db's
                cl.db_hh = _dptr(keep(np.zeros(G))) if cell == _TRAIN_GRU else cl.db
        _plan_units(&self.pc, keep)
        _plan_phases(&self.pc, keep, slices, &self.gang_raw)

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
    def num_layers(self):
        return self.pc.L

    @property
    def num_directions(self):
        return self.pc.D

    @property
    def dropout(self):
        """Whether :meth:`chunk` takes dropout masks for the layers above the first."""
        return bool(self.pc.dropout)

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

    @property
    def slices(self):
        """Threads' shares by hidden units of the one row chunk (1: a thread a chunk)."""
        return self.pc.slices

    @property
    def n_tickets(self):
        """Calls of the chunks a batch takes: :attr:`n_chunks`, or :attr:`slices`
        calls of :meth:`shared_chunk`."""
        return self.pc.n_tickets

    def __dealloc__(self):
        PyMem_Free(self.pc.ch)
        PyMem_Free(self.pc.units)
        PyMem_Free(self.gang_raw)

    cdef _PlanC* plan_c(self):
        return &self.pc

    def pack(self, *weights):
        """Pack the current weights for this mini-batch's forward and backward.

        ``weights``: each layer's input weights, recurrent weights and two
        biases, layer by layer (4 arrays a layer and direction, the forward
        direction first, as a network lists them); they must stay alive and
        unchanged until the mini-batch's chunks have run.
        """
        cdef const float* w_ih[_MAX_LAYERS]
        cdef const float* w_hh[_MAX_LAYERS]
        cdef const float* b_ih[_MAX_LAYERS]
        cdef const float* b_hh[_MAX_LAYERS]
        self._layer_arrays(list(weights), w_ih, w_hh, b_ih, b_hh, "TrainPlan.pack: weight")
        with nogil:
            _plan_pack(&self.pc, w_ih, w_hh, b_ih, b_hh)
            _plan_reset(&self.pc)

    cdef int _layer_arrays(self, list arrays, const float** w_ih, const float** w_hh,
                           const float** b_ih, const float** b_hh, str what) except -1:
        # the layers' four arrays each, checked against the plan's shapes
        cdef int l
        cdef int64_t G = self.pc.G, H = self.pc.H
        if len(arrays) != 4 * self.pc.NL:
            raise ValueError(f"{what}s: four arrays a layer and direction, "
                             f"{self.pc.NL} of them")
        for l in range(self.pc.NL):
            shapes = [(G, self.pc.lay[l].NI), (G, H), (G,), (G,)]
            for a, shape in zip(arrays[4 * l:4 * l + 4], shapes):
                if (type(a) is not np.ndarray or a.dtype != np.float32
                        or not a.flags.c_contiguous or a.shape != shape):
                    raise ValueError(f"{what} shapes do not match the plan")
            w_ih[l], w_hh[l] = _fptr(arrays[4 * l]), _fptr(arrays[4 * l + 1])
            b_ih[l], b_hh[l] = _fptr(arrays[4 * l + 2]), _fptr(arrays[4 * l + 3])
        return 0

    def chunk(self, int64_t c, const float[:, :, ::1] x, const int64_t[::1] target_class,
              const double[:, ::1] target_value, const double[::1] weight, double w_sum,
              const float[:, ::1] w_out, const float[::1] b_out,
              const float[:, :, :, ::1] masks=None, const int64_t[::1] lengths=None):
        """Forward, loss and backward of chunk ``c`` (GIL released); 0, or 1 if the
        gradient of the recurrent features is not finite.

        ``x`` (batch, steps, input_size): at most the plan's steps.
        ``masks`` (a plan with dropout; None otherwise): the batch's scaled
        dropout masks, (num_layers - 1, steps, batch, num_directions *
        hidden_size) float32, mask ``l - 1`` for the input of layer ``l``.
        ``lengths`` (None: every row runs all steps): each row's length, in
        ``[1, steps]``, the rows of every chunk by decreasing length; a row's
        readout takes its state at its last step.
        """
        cdef _ChunkArgs a
        cdef int32_t st
        if not 0 <= c < self.pc.n_chunks:
            raise ValueError("TrainPlan.chunk: no such chunk")
        self._args(c, x, target_class, target_value, weight, w_sum, w_out, b_out, masks,
                   lengths, &a)
        with nogil:
            st = _plan_chunk(&self.pc, c, &a)
        return st

    def shared_chunk(self, const float[:, :, ::1] x, const int64_t[::1] target_class,
                     const double[:, ::1] target_value, const double[::1] weight, double w_sum,
                     const float[:, ::1] w_out, const float[::1] b_out,
                     const float[:, :, :, ::1] masks=None, const int64_t[::1] lengths=None):
        """:meth:`chunk` of the one row chunk, shared by hidden units with every
        thread that calls it (GIL released); returns the chunk's status.

        After :meth:`pack`, :attr:`n_tickets` calls with the same arguments,
        from any threads at once or one after another, run the chunk once:
        each takes the chunk's tickets while there are any (a thread alone
        runs them all), and once every call has returned the chunk is done,
        with the bits of :meth:`chunk`.  A plan of ``slices=1`` has none.
        """
        cdef _ChunkArgs a
        if self.pc.slices < 2:
            raise ValueError("TrainPlan.shared_chunk: this plan takes no hidden slices")
        self._args(0, x, target_class, target_value, weight, w_sum, w_out, b_out, masks,
                   lengths, &a)
        with nogil:
            _chunk_shared(&self.pc, &a)
        return int(self.pc.ch[0].status[0])

    cdef int _args(self, int64_t c, const float[:, :, ::1] x, const int64_t[::1] target_class,
                   const double[:, ::1] target_value, const double[::1] weight, double w_sum,
                   const float[:, ::1] w_out, const float[::1] b_out,
                   const float[:, :, :, ::1] masks, const int64_t[::1] lengths,
                   _ChunkArgs* a) except -1:
        # chunk c's arguments, checked against the plan, into a
        cdef int64_t B = self.pc.B, K = self.pc.K, r, T = x.shape[1]
        cdef _ChunkC* ch = &self.pc.ch[c]
        a.masks, a.lengths, a.rows = NULL, NULL, NULL
        if lengths is not None:
            if lengths.shape[0] != B:
                raise ValueError("TrainPlan.chunk: one length per row is needed")
            for r in range(ch.r0, ch.r0 + ch.n):
                if not 1 <= lengths[r] <= T or (r > ch.r0 and lengths[r] > lengths[r - 1]):
                    raise ValueError("TrainPlan.chunk: lengths must be in [1, steps], "
                                     "each chunk's rows by decreasing length")
            a.lengths = &lengths[0]
        if self.pc.dropout:
            if (masks is None or masks.shape[0] != self.pc.L - 1 or masks.shape[1] != T
                    or masks.shape[2] != B or masks.shape[3] != self.pc.D * self.pc.H):
                raise ValueError("TrainPlan.chunk: dropout masks of shape (layers - 1, steps, "
                                 "batch, directions * hidden) are needed")
            a.masks = &masks[0, 0, 0, 0]
        elif masks is not None:
            raise ValueError("TrainPlan.chunk: this plan takes no dropout masks")
        if self.pc.NL > 1 and self.pc.lay[1].w_ih == NULL:
            raise ValueError("TrainPlan.chunk: pack the weights first")
        if (x.shape[0] != B or not 1 <= T <= self.pc.T or x.shape[2] != self.pc.NI
                or weight.shape[0] != B):
            raise ValueError("TrainPlan.chunk: x or weight does not match the plan")
        if w_out.shape[0] != K or w_out.shape[1] != self.pc.D * self.pc.H or b_out.shape[0] != K:
            raise ValueError("TrainPlan.chunk: the readout does not match the plan")
        a.ycls, a.yval = NULL, NULL
        if self.pc.loss == LOSS_CROSS_ENTROPY:
            if target_class is None or target_class.shape[0] != B:
                raise ValueError("TrainPlan.chunk: one class index per row is needed")
            for r in range(ch.r0, ch.r0 + ch.n):
                if not 0 <= target_class[r] < K:
                    raise ValueError("TrainPlan.chunk: a class index is out of range")
            a.ycls = &target_class[0]
        elif target_value is None or target_value.shape[0] != B or target_value.shape[1] != K:
            raise ValueError("TrainPlan.chunk: targets must be (batch, n_outputs)")
        else:
            a.yval = &target_value[0, 0]
        a.x, a.weight, a.w_sum = &x[0, 0, 0], &weight[0], w_sum
        a.w_out, a.b_out = &w_out[0, 0], &b_out[0]
        a.T, a.xT = T, T
        return 0

    def status_codes(self):
        """The chunks' status of their last run (0: finite)."""
        return [int(self.pc.ch[c].status[0]) for c in range(self.pc.n_chunks)]

    def reduce(self, *grads):
        """Sum the chunks' partial gradients in chunk order into the given arrays.

        ``grads``: the gradient arrays in the network's parameter order (four
        a layer, then the readout's two).  Returns ``(loss, squared norm)``:
        the squared global L2 norm of the gradients, in float64, summed per
        piece of an array and then in parameter order.
        """
        cdef double sq
        cdef _Grads d
        self._grads(list(grads), &d)
        with nogil:
            sq = _plan_reduce(&self.pc, &d)
        return _plan_loss(&self.pc), sq

    def reduce_adam(self, list grads, p, g, m, v, save, optimizer, double clip_norm):
        """:meth:`reduce`, then the checks, clipping and one Adam step, in one GIL-free call.

        ``grads``: as for :meth:`reduce`; ``p``, ``g``, ``m``, ``v``: the flat
        float32 parameter, gradient and moment buffers the gradient arrays
        are views of; ``save``: three scratch buffers as long; ``optimizer``:
        the Adam (or AdamW) whose hyper-parameters and step count ``t`` apply
        (``t`` is advanced on a step that was taken); ``clip_norm`` < 0: no
        clipping.  Returns ``(loss, squared norm, code)``: 0 the step was
        taken; 1 the loss, 2 the gradient of the recurrent features, 3 the
        gradient norm is not finite (nothing updated); 4 the update made the
        parameters non-finite (undone: parameters and moments are as before).
        """
        cdef double loss, sq
        cdef int code
        cdef int64_t t = optimizer.t + 1
        cdef _Grads d
        cdef _Flat f
        self._grads(grads, &d)
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

    cdef int _grads(self, list arrays, _Grads* d) except -1:
        # the gradient (or parameter) arrays in parameter order, checked, into d
        cdef int64_t K = self.pc.K, H = self.pc.D * self.pc.H
        cdef int l
        if len(arrays) != 4 * self.pc.NL + 2:
            raise ValueError("TrainPlan.reduce: four gradient arrays a layer and the readout's two")
        cdef int64_t nl = 4 * self.pc.NL
        self._layer_arrays(arrays[:nl], <const float**> d.w_ih, <const float**> d.w_hh,
                           <const float**> d.b_ih, <const float**> d.b_hh,
                           "TrainPlan.reduce: gradient")
        w_out, b_out = arrays[nl], arrays[nl + 1]
        for a, shape in ((w_out, (K, H)), (b_out, (K,))):
            if (type(a) is not np.ndarray or a.dtype != np.float32
                    or not a.flags.c_contiguous or a.shape != shape):
                raise ValueError("TrainPlan.reduce: gradient shapes do not match the plan")
        d.w_out, d.b_out = _fptr(w_out), _fptr(b_out)
        for l in range(self.pc.NL, _MAX_LAYERS):
            d.w_ih[l] = d.w_hh[l] = d.b_ih[l] = d.b_hh[l] = NULL
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
