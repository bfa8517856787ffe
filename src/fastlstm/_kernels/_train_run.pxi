# A run of mini-batches of the compiled training step in one GIL-free call
# per thread: the threads stay in C from the first batch to the last, taking
# the chunks and the steps of one batch after another as tickets
# (csrc/fl_run.h), so a batch costs no hand-over of work between threads,
# and the step (reduction and update) is split over them in slices.  Each
# batch runs exactly the code of TrainPlan.chunk and reduce_adam, on the same
# plans: a run gives the bits of its batches taken one by one.
# Included after _train.pxi.
from libc.stdint cimport int8_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef extern from "csrc/fl_run.h":
    ctypedef struct fl_run_sync:
        pass
    void fl_run_init(fl_run_sync* s, long long batches) noexcept nogil
    long long fl_run_take(fl_run_sync* s) noexcept nogil
    void fl_run_finish(fl_run_sync* s) noexcept nogil
    void fl_run_stop(fl_run_sync* s, long long batches) noexcept nogil
    long long fl_run_kept(fl_run_sync* s) noexcept nogil
    int fl_run_wait(fl_run_sync* s, long long need, long long batch) noexcept nogil
    ctypedef struct fl_claim:
        pass
    void fl_claim_init(fl_claim* c) noexcept nogil
    int fl_claim_take(fl_claim* c, long long stamp) noexcept nogil
    long long fl_run_serial() noexcept nogil


cdef struct _RunC:
    _PlanC** plans          # the plan of each batch
    const int64_t* rows     # the batches' samples, one batch after another
    const int64_t* offs     # batch m: rows[offs[m]:offs[m + 1]]
    const int64_t* tick     # batch m's tickets: [tick[m], tick[m + 1]), the last its step
    const double* wsums     # each batch's sum of sample weights
    const float* masks      # plans with dropout: batch m's masks at masks + offs[m] * mask_row
    int64_t mask_row        # (layers - 1) * T * D * H: the masks' floats a row of a batch
    const float* x          # (samples, T, I): the set, padded to its longest sequence
    int64_t xT              # its T
    const int64_t* steps    # batch m's steps (the longest of its rows), or NULL: T each
    const int64_t* lens     # the rows' lengths, in the order of rows, or NULL: T each
    const int8_t* ragged    # batch m runs its rows' lengths (else all run steps[m])
    const int64_t* ycls
    const double* yval
    const double* weight
    _Grads w                # the parameters, views of the flat buffer
    _Grads d                # the gradients, likewise
    _Flat f
    double lr, b1, b2, eps, wd, clip
    int decoupled
    int64_t t0              # the optimizer's step count before the first batch
    int64_t first, n        # this call runs batches [first, n)
    double deadline         # CLOCK_MONOTONIC seconds: no batch starts after it
    double* losses
    double* sqs
    int code                # why the run stopped early (TrainPlan.reduce_adam's codes)
    fl_run_sync* sync
    char* claims            # fl_claim of each row chunk index (the widest plan's)
    long long serial        # this call's number: batch m's chunks are claimed as serial, m


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef inline fl_adam_args _run_adam_args(const _RunC* r, int64_t m) noexcept nogil:
    return _adam_args(r.lr, r.b1, r.b2, r.eps, r.wd, r.decoupled, r.t0 + (m - r.first) + 1,
                      0.0, False)


cdef void _run_update(_RunC* r, int64_t m, int64_t s) noexcept nogil:
    # slice s of batch m's update, unless the checks fail (then nothing)
    cdef fl_adam_args a = _run_adam_args(r, m)
    cdef double loss, sq
    if _plan_check(r.plans[m], &a, r.clip, &loss, &sq) == 0:
        _plan_adam_slice(r.plans[m], &r.f, &a, s)


cdef bint _run_kept(_RunC* r, int64_t m) noexcept nogil:
    # batch m's step came out whole: checks passed, the weights finite
    cdef fl_adam_args a = _run_adam_args(r, m)
    cdef double loss, sq
    return _plan_check(r.plans[m], &a, r.clip, &loss, &sq) == 0 and _plan_updated(r.plans[m])


cdef void _run_pack_half(_RunC* r, int64_t m, bint second) noexcept nogil:
    # half of the next batch's forward panels of every layer (a step that came
    # out whole)
    cdef _PlanC* q = r.plans[m + 1]
    cdef int64_t np = fl_packed_panels(q.cell, q.H), half = np // 2
    cdef int l
    for l in range(q.NL):
        fl_pack_panels(q.cell, q.lay[l].NI, q.H, r.w.w_ih[l], r.w.w_hh[l], r.w.b_ih[l],
                       r.w.b_hh[l], q.lay[l].wp, q.lay[l].bp,
                       half if second else 0, np if second else half)
        q.lay[l].w_ih = r.w.w_ih[l]


cdef void _run_finish(_RunC* r, int64_t m) noexcept nogil:
    # the end of batch m's step: its loss and norm kept, undone and the run
    # stopped if it failed, else the run stopped if its time is up; the first
    # half of the next batch's forward weights packed
    cdef fl_adam_args a = _run_adam_args(r, m)
    cdef _PlanC* p = r.plans[m]
    cdef int code = _plan_check(p, &a, r.clip, &r.losses[m], &r.sqs[m])
    if code == 0 and not _plan_updated(p):
        _plan_undo(&r.f)
        code = 4
    if code != 0:
        r.code = code
        fl_run_stop(r.sync, m)
    elif m + 1 < r.n:
        _plan_reset(r.plans[m + 1])  # no ticket of batch m runs any more
        _run_pack_half(r, m, False)
        if _now() > r.deadline:
            fl_run_stop(r.sync, m + 1)


cdef void _run_pack_rest(_RunC* r, int64_t m) noexcept nogil:
    # beside _run_finish: the other half of the next batch's forward weights
    # and its backward weights (wasted, and harmless, if the run stops at its
    # time: a call packs its first batch)
    cdef _PlanC* q
    cdef int l
    if m + 1 < r.n and _run_kept(r, m):
        q = r.plans[m + 1]
        _run_pack_half(r, m, True)
        for l in range(q.NL):
            fl_pack_backward(q.cell, q.H, r.w.w_hh[l], q.lay[l].wpb)


cdef inline fl_claim* _claim(const _RunC* r, int64_t c) noexcept nogil:
    return <fl_claim*> (r.claims + c * sizeof(fl_claim))


cdef int64_t _run_claim(_RunC* r, int64_t m, int64_t me, int64_t of) noexcept nogil:
    # the row chunk a chunk ticket of batch m runs on thread me of `of`: one
    # of its own share of the chunks (the same each batch, so their buffers
    # stay in its cache), else any still free
    cdef int64_t nc = r.plans[m].n_chunks, c
    cdef long long stamp = r.serial * (1LL << 32) + m
    if me < of:
        for c in range(me * nc // of, (me + 1) * nc // of):
            if fl_claim_take(_claim(r, c), stamp):
                return c
    while True:  # as many tickets as chunks: one is free
        for c in range(nc):
            if fl_claim_take(_claim(r, c), stamp):
                return c


cdef void _run_chunk(_RunC* r, int64_t m, int64_t i) noexcept nogil:
    # chunk ticket i of batch m: chunk i, or a call of its shared chunk
    cdef _PlanC* p = r.plans[m]
    cdef _ChunkArgs a
    a.x, a.rows = r.x, r.rows + r.offs[m]
    a.ycls, a.yval, a.weight, a.w_sum = r.ycls, r.yval, r.weight, r.wsums[m]
    a.w_out, a.b_out = r.w.w_out, r.w.b_out
    a.masks = r.masks + r.offs[m] * r.mask_row if r.masks != NULL else NULL
    a.T = r.steps[m] if r.steps != NULL else p.T
    a.lengths = r.lens + r.offs[m] if r.lens != NULL and r.ragged[m] else NULL
    a.xT = r.xT
    if p.slices > 1:
        _chunk_shared(p, &a)
    else:
        _plan_chunk(p, i, &a)


cdef void _run_work(_RunC* r, int64_t me, int64_t of) noexcept nogil:
    # take tickets until the run is done or stopped.  Batch m's tickets: its
    # chunks, then the step's slices of the reduction, then of the update,
    # then two to finish (one packing the forward weights, one the backward);
    # each phase waits for every ticket before it.  Thread me of the `of`
    # that join prefers the same row chunks batch after batch
    cdef int64_t m = r.first, k, i, nc, S, need, base = r.tick[r.first], end = r.tick[r.n]
    cdef _PlanC* p
    while True:
        k = base + fl_run_take(r.sync)
        if k >= end:
            return
        while k >= r.tick[m + 1]:
            m += 1
        p = r.plans[m]
        nc, S, i = p.n_tickets, p.n_slices, k - r.tick[m]
        if i < nc:
            need = r.tick[m]
        elif i < nc + S:
            need = r.tick[m] + nc
        elif i < nc + 2 * S:
            need = r.tick[m] + nc + S
        else:
            need = r.tick[m] + nc + 2 * S
        if not fl_run_wait(r.sync, need - base, m):
            return
        if i < nc:
            _run_chunk(r, m, i if p.slices > 1 else _run_claim(r, m, me, of))
        elif i < nc + S:
            _plan_reduce_slice(p, &r.d, i - nc)
        elif i < nc + 2 * S:
            _run_update(r, m, i - nc - S)
        elif i == nc + 2 * S:
            _run_finish(r, m)
        else:
            _run_pack_rest(r, m)
        fl_run_finish(r.sync)


cdef class TrainRun:
    """A run of mini-batches: each batch's chunks and Adam step, threads staying in C.

    ``plans[m]``: the :class:`TrainPlan` of batch ``m`` (batches of one size
    share one); ``rows``: the batches' sample indices, one batch after
    another, ``offs`` their edges; ``wsums``: each batch's weight sum;
    ``x``, ``target_class`` / ``target_value``, ``weight``: the whole set;
    ``params`` and ``grads``: the parameter and gradient arrays in the
    network's order (views of the flat buffers ``p`` and ``g``); ``m``,
    ``v``, ``save`` as for :meth:`TrainPlan.reduce_adam`; ``masks`` (plans
    with dropout, else None): every batch's dropout masks as
    :meth:`TrainPlan.chunk` takes them, one batch after another in one flat
    float32 array; ``lengths`` (None: every sequence runs the set's steps):
    each row's length, in the order of ``rows``, every batch's rows by
    decreasing length (no dropout then): a batch runs its longest row's
    steps on a plan of at least as many, each row its own, as
    :meth:`TrainPlan.chunk` with lengths.  :meth:`start` sets up a call over batches
    ``[first, n)``, :meth:`work` runs it (every joining thread calls it; one
    alone does everything), :meth:`result` tells how far it got;
    :meth:`reorder` takes another epoch's batches on the same set.
    """

    cdef _RunC r
    cdef void* raw
    cdef int64_t n_claims
    cdef list _keep
    cdef readonly int64_t n_batches
    cdef int64_t n_samples, T, NI
    cdef TrainPlan first_plan
    cdef object tick, _batch_keep, steps, ragged
    cdef readonly object losses, sqnorms

    def __cinit__(self, list plans, const int64_t[::1] rows, const int64_t[::1] offs,
                  const double[::1] wsums, const float[:, :, ::1] x, target_class,
                  target_value, const double[::1] weight, list params, list grads,
                  p, g, m, v, save, double clip_norm, masks=None, lengths=None):
        cdef int64_t n = len(plans), N = x.shape[0], K
        cdef TrainPlan plan
        self.raw = NULL
        self.r.plans = NULL
        self.r.claims = NULL
        self.n_claims = 0
        if n < 1:
            raise ValueError("TrainRun: one plan, one weight sum and one edge per batch")
        if weight.shape[0] != N:
            raise ValueError("TrainRun: rows, offs and weight do not match")
        if not isinstance(plans[0], TrainPlan):
            raise TypeError("TrainRun: plans must be TrainPlans")
        plan = plans[0]
        K = plan.K
        self.r.plans = <_PlanC**> PyMem_Malloc(n * sizeof(_PlanC*))
        self.raw = PyMem_Malloc(sizeof(fl_run_sync) + 128)
        if self.r.plans == NULL or self.raw == NULL:
            raise MemoryError()
        self.r.sync = <fl_run_sync*> ((<size_t> self.raw + 63) & ~(<size_t> 63))
        self.r.n = self.n_batches = n
        self.n_samples = N
        self.T, self.NI = x.shape[1], x.shape[2]
        self.first_plan = plan
        self.r.ycls, self.r.yval = NULL, NULL
        if plan.loss == LOSS_CROSS_ENTROPY:
            cls = np.ascontiguousarray(target_class, dtype=np.int64)
            if cls.shape != (N,) or (N and (cls.min() < 0 or cls.max() >= K)):
                raise ValueError("TrainRun: one class index in range per sample is needed")
            target_class = cls
            self.r.ycls = <const int64_t*> cnp.PyArray_DATA(<cnp.ndarray> cls)
        else:
            val = np.ascontiguousarray(target_value, dtype=np.float64)
            if val.shape != (N, K):
                raise ValueError("TrainRun: targets must be (samples, n_outputs)")
            target_value = val
            self.r.yval = _dptr(val)
        plan._grads(list(grads), &self.r.d)
        plan._grads(list(params), &self.r.w)
        self.r.f = _flat_of(p, g, m, v, save)
        self.tick = np.zeros(n + 1, dtype=np.int64)
        # everything the C code reads, kept alive with the run
        self._keep = [x, target_class, target_value, weight, params, grads, p, g, m, v, save]
        self.r.x, self.r.weight = &x[0, 0, 0], &weight[0]
        self.r.tick = <const int64_t*> cnp.PyArray_DATA(<cnp.ndarray> self.tick)
        self.r.clip = clip_norm
        self.r.xT = self.T
        self.steps = np.zeros(n, dtype=np.int64)
        self.ragged = np.zeros(n, dtype=np.int8)
        self._batches(plans, rows, offs, wsums, masks, lengths)

    def __dealloc__(self):
        PyMem_Free(self.r.plans)
        PyMem_Free(self.raw)
        PyMem_Free(self.r.claims)

    cdef _batches(self, list plans, const int64_t[::1] rows, const int64_t[::1] offs,
                  const double[::1] wsums, masks, lengths):
        # the batches of the run: their plans, samples, weight sums and lengths
        cdef int64_t n = self.r.n, N = self.n_samples, b, j, count, top
        cdef int64_t* tick = <int64_t*> cnp.PyArray_DATA(<cnp.ndarray> self.tick)
        cdef int64_t* steps = <int64_t*> cnp.PyArray_DATA(<cnp.ndarray> self.steps)
        cdef int8_t* ragged = <int8_t*> cnp.PyArray_DATA(<cnp.ndarray> self.ragged)
        cdef const int64_t* lens = NULL
        cdef TrainPlan plan, first = self.first_plan
        cdef bint bad = False
        if len(plans) != n or offs.shape[0] != n + 1 or wsums.shape[0] != n:
            raise ValueError("TrainRun: one plan, one weight sum and one edge per batch")
        if offs[0] != 0 or offs[n] != rows.shape[0]:
            raise ValueError("TrainRun: rows, offs and weight do not match")
        if lengths is not None:
            if first.pc.dropout:
                raise ValueError("TrainRun: runs of several lengths take no dropout")
            if (type(lengths) is not np.ndarray or lengths.dtype != np.int64
                    or lengths.ndim != 1 or not lengths.flags.c_contiguous
                    or lengths.shape[0] != rows.shape[0]):
                raise ValueError("TrainRun: one int64 length per row is needed")
            lens = <const int64_t*> cnp.PyArray_DATA(<cnp.ndarray> lengths)
            with nogil:
                for b in range(n):
                    top = lens[offs[b]] if offs[b + 1] > offs[b] else 0
                    steps[b], ragged[b] = top, 0
                    for j in range(offs[b], offs[b + 1]):
                        if not 1 <= lens[j] <= self.T or lens[j] > top:
                            bad = True
                        top = lens[j]
                        if lens[j] != steps[b]:
                            ragged[b] = 1
            if bad:
                raise ValueError("TrainRun: lengths must be in [1, steps], each batch's rows "
                                 "by decreasing length")
        for b in range(n):
            if not isinstance(plans[b], TrainPlan):
                raise TypeError("TrainRun: plans must be TrainPlans")
            plan = plans[b]
            if (plan.pc.B != offs[b + 1] - offs[b]
                    or (plan.pc.T != self.T if lens == NULL else plan.pc.T < steps[b])
                    or plan.pc.NI != self.NI or plan.pc.K != first.pc.K
                    or plan.pc.H != first.pc.H or plan.pc.L != first.pc.L
                    or plan.pc.D != first.pc.D or plan.pc.dropout != first.pc.dropout
                    or plan.pc.cell != first.pc.cell or plan.pc.loss != first.pc.loss):
                raise ValueError("TrainRun: a plan does not match its batch")
        count = rows.shape[0]
        with nogil:
            for j in range(count):
                if rows[j] < 0 or rows[j] >= N:
                    bad = True
                    break
        if bad:
            raise ValueError("TrainRun: a row index is out of range")
        tick[0] = 0
        top = 0
        for b in range(n):
            plan = plans[b]
            self.r.plans[b] = plan.plan_c()
            tick[b + 1] = tick[b] + plan.pc.n_tickets + 2 * plan.pc.n_slices + 2
            top = max(top, plan.pc.n_chunks)
        if top > self.n_claims:  # a claim per row chunk of the widest plan
            PyMem_Free(self.r.claims)
            self.r.claims = <char*> PyMem_Malloc(top * sizeof(fl_claim))
            if self.r.claims == NULL:
                self.n_claims = 0
                raise MemoryError()
            self.n_claims = top
            for j in range(top):
                fl_claim_init(_claim(&self.r, j))
        self.losses = np.full(n, np.nan)
        self.sqnorms = np.full(n, np.nan)
        # the batches' arrays, kept alive with the run
        self.r.mask_row = (first.pc.L - 1) * first.pc.T * first.pc.D * first.pc.H
        self.r.masks = NULL
        if first.pc.dropout:
            if (type(masks) is not np.ndarray or masks.dtype != np.float32 or masks.ndim != 1
                    or not masks.flags.c_contiguous or masks.shape[0] != count * self.r.mask_row):
                raise ValueError("TrainRun: the batches' dropout masks, one flat float32 array")
            self.r.masks = <const float*> cnp.PyArray_DATA(<cnp.ndarray> masks)
        elif masks is not None:
            raise ValueError("TrainRun: these plans take no dropout masks")
        self._batch_keep = (plans, rows, offs, wsums, masks, lengths)
        self.r.lens = lens
        self.r.steps = steps if lens != NULL else NULL
        self.r.ragged = ragged
        self.r.rows = &rows[0] if count else NULL
        self.r.offs, self.r.wsums = &offs[0], &wsums[0]
        self.r.losses, self.r.sqs = _dptr(self.losses), _dptr(self.sqnorms)
        self.r.first = n  # nothing to run before start()

    def reorder(self, list plans, rows, offs, wsums, masks=None, lengths=None):
        """Take another epoch's batches: as many as the run's, new samples and order.

        ``plans``, ``rows``, ``offs``, ``wsums`` and ``lengths`` as for the constructor
        (the plans of the same cell, loss and step count), and the new
        batches' ``masks`` (plans with dropout); the set, the
        parameters and the buffers stay.  Fresh :attr:`losses` and
        :attr:`sqnorms`.  Call it only between calls (never while threads run
        :meth:`work`).
        """
        self._batches(plans, rows, offs, wsums, masks, lengths)

    def start(self, int64_t first, optimizer, double seconds):
        """Set up a call over batches ``[first, n)``: no batch starts after ``seconds``.

        Reads the optimizer's hyper-parameters and step count ``t`` and packs
        the current weights for batch ``first``.
        """
        if not 0 <= first < self.r.n:
            raise ValueError("TrainRun.start: no such batch")
        cdef _RunC* r = &self.r
        r.lr, r.b1, r.b2 = optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2
        r.eps, r.wd, r.decoupled = optimizer.epsilon, optimizer.weight_decay, optimizer._decoupled
        r.t0 = optimizer.t
        r.first, r.code = first, 0
        r.serial = fl_run_serial()
        fl_run_init(r.sync, r.n)
        with nogil:
            r.deadline = _now() + seconds
            _plan_pack(r.plans[first], <const float**> r.w.w_ih, <const float**> r.w.w_hh,
                       <const float**> r.w.b_ih, <const float**> r.w.b_hh)
            _plan_reset(r.plans[first])

    def work(self, int64_t index=0, int64_t of=1):
        """Take tickets until the call is done (any number of threads, GIL released).

        ``index`` of ``of``: the caller's place among the threads the call
        means to take (the same thread the same place from call to call):
        each prefers its own share of the row chunks, whose buffers then stay
        in its cache; which thread runs a chunk changes nothing in its result.
        """
        if not 0 <= index < of:
            raise ValueError("TrainRun.work: index must be in [0, of)")
        with nogil:
            _run_work(&self.r, index, of)

    def result(self, optimizer):
        """``(end, code)`` of the call: batches ``[first, end)`` were stepped; ``code``:
        0, or why batch ``end`` failed (nothing of it was applied).  Advances the
        optimizer's step count by the steps taken."""
        cdef int64_t end = fl_run_kept(self.r.sync)
        optimizer.t = self.r.t0 + (end - self.r.first)
        return int(end), int(self.r.code)
