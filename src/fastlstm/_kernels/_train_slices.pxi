# Hidden slices of the compiled training step: a batch too narrow for two row
# chunks (TrainPlan(slices > 1)) still runs on every thread.  Its one chunk
# is a schedule of phases, each of tickets from one counter (csrc/fl_gang.h),
# a ticket starting once every ticket of the phases before its own is done:
# the gather of x; per layer-direction, its start (dropout, c = 0) and its
# forward on a gang, the threads holding the phase's tickets sharing each
# step's panels; the readout and loss; per layer-direction from the top, its
# start and its backward on a gang; per layer, its weight gradients in slices
# of gate rows and its dL/dx.  Each ticket runs the same function on the
# same data as _plan_chunk does in turn, and the gangs give the bits of one
# thread, so a shared chunk is the chunk run on one thread, bit for bit.
# There is no fixed set of parties: a thread alone takes every ticket, a late
# one takes fewer.  Included after _train_chunk.pxi.

cdef extern from "csrc/fl_gang.h":
    void fl_gang_wait(fl_gang* g, long long need) noexcept nogil
    long long fl_gang_take(fl_gang* g) noexcept nogil
    void fl_gang_finish(fl_gang* g) noexcept nogil


cdef enum:
    # the kinds of a shared chunk's phases
    _PH_GATHER = 0    # one ticket: x gathered
    _PH_PRE_F = 1     # one ticket: a layer-direction's input masked, its c zeroed
    _PH_FWD = 2       # slices tickets: its forward, on its gang
    _PH_READOUT = 3   # one ticket: readout, loss, their gradients
    _PH_PRE_B = 4     # one ticket: dL/dh, dL/dc of its final state, bias sums zeroed
    _PH_BWD = 5       # slices tickets: its backward, on its gang
    _PH_WGRAD = 6     # D * slices tickets of weight gradients, then one of dL/dx (layers > 0)
    # panels a gang's ticket covers: the phase's panels cut into this many
    # chunks per thread (as the layer's gangs cut them)
    _GANG_CHUNKS_PER_SLICE = 2
    # a slice of weight-gradient rows starts at a multiple of this
    _WG_ROW_ALIGN = 16


cdef inline fl_gang* _gang(const _PlanC* p, int64_t i) noexcept nogil:
    return <fl_gang*> (p.gangs + i * sizeof(fl_gang))


cdef int _plan_phases(_PlanC* pc, keep, int64_t slices, void** raw) except -1:
    # the plan's tickets: its chunks, or a shared chunk's phases and gangs
    cdef int64_t P = slices, n
    pc.slices = slices
    pc.n_tickets = pc.n_chunks if slices == 1 else slices
    pc.n_phases = 0
    pc.ph_kind, pc.ph_arg, pc.ph_start, pc.ph_of = NULL, NULL, NULL, NULL
    pc.gangs, pc.sync = NULL, NULL
    if slices == 1:
        return 0
    phases = [(_PH_GATHER, 0, 1)]
    for u in range(pc.NL):
        phases += [(_PH_PRE_F, u, 1), (_PH_FWD, u, P)]
    phases.append((_PH_READOUT, 0, 1))
    for l in range(pc.L - 1, -1, -1):
        for d in range(pc.D):
            phases += [(_PH_PRE_B, l * pc.D + d, 1), (_PH_BWD, l * pc.D + d, P)]
        phases.append((_PH_WGRAD, l, pc.D * P + (1 if l > 0 else 0)))
    pc.n_phases = len(phases)
    kind = keep(np.array([q[0] for q in phases], dtype=np.int32))
    arg = keep(np.array([q[1] for q in phases], dtype=np.int32))
    start = keep(np.zeros(len(phases) + 1, dtype=np.int64))
    start[1:] = np.cumsum([q[2] for q in phases])
    of = keep(np.repeat(np.arange(len(phases), dtype=np.int32), [q[2] for q in phases]))
    pc.ph_kind = <int32_t*> cnp.PyArray_DATA(<cnp.ndarray> kind)
    pc.ph_arg = <int32_t*> cnp.PyArray_DATA(<cnp.ndarray> arg)
    pc.ph_start = <int64_t*> cnp.PyArray_DATA(<cnp.ndarray> start)
    pc.ph_of = <int32_t*> cnp.PyArray_DATA(<cnp.ndarray> of)
    n = 2 * pc.NL + 1  # each layer-direction's two gangs, then the schedule's counter
    raw[0] = PyMem_Malloc(n * sizeof(fl_gang) + 128)
    if raw[0] == NULL:
        raise MemoryError()
    pc.gangs = <char*> ((<size_t> raw[0] + 63) & ~(<size_t> 63))
    pc.sync = _gang(pc, 2 * pc.NL)
    pc.fchunk = max(1, -(-fl_packed_panels(pc.cell, pc.H) // (P * _GANG_CHUNKS_PER_SLICE)))
    pc.bchunk = max(1, -(-fl_backward_panels(pc.H) // (P * _GANG_CHUNKS_PER_SLICE)))
    _plan_reset(pc)
    return 0


cdef void _plan_reset(_PlanC* p) noexcept nogil:
    # a shared chunk's schedule and gangs from their first tickets (before a
    # batch's first call; nothing for a plan without slices)
    cdef int u
    if p.slices > 1:
        fl_gang_init(p.sync, 1)
        for u in range(p.NL):
            fl_gang_init(_gang(p, 2 * u), p.fchunk)
            fl_gang_init(_gang(p, 2 * u + 1), p.bchunk)


cdef void _chunk_shared(_PlanC* p, const _ChunkArgs* a) noexcept nogil:
    # take the shared chunk's tickets while there are any (csrc/fl_gang.h)
    cdef _ChunkC* ch = &p.ch[0]
    cdef int64_t k, f, total = p.ph_start[p.n_phases]
    while True:
        k = fl_gang_take(p.sync)
        if k >= total:
            return
        f = p.ph_of[k]
        fl_gang_wait(p.sync, p.ph_start[f])
        _phase_ticket(p, ch, a, p.ph_kind[f], p.ph_arg[f], k - p.ph_start[f])
        fl_gang_finish(p.sync)


cdef void _phase_ticket(_PlanC* p, _ChunkC* ch, const _ChunkArgs* a, int kind, int arg,
                        int64_t j) noexcept nogil:
    # ticket j of a phase of `kind` on layer-direction (or layer) `arg`; after
    # the readout, nothing if its gradient is not finite (as _plan_chunk stops)
    cdef int64_t u, s, P = p.slices, G = p.G
    if kind == _PH_GATHER:
        _chunk_gather(p, ch, a)
    elif kind == _PH_PRE_F:
        _chunk_pre_forward(p, ch, a, arg)
    elif kind == _PH_FWD:
        _chunk_forward(p, ch, a, arg, _gang(p, 2 * arg))
    elif kind == _PH_READOUT:
        _chunk_readout(p, ch, a)
    elif ch.status[0] != 0:
        return
    elif kind == _PH_PRE_B:
        _chunk_pre_backward(p, ch, arg)
    elif kind == _PH_BWD:
        _chunk_backward(p, ch, a, arg, _gang(p, 2 * arg + 1))
    elif j < p.D * P:  # _PH_WGRAD: slice s of the gate rows of direction j // P
        u, s = arg * p.D + j // P, j % P
        _chunk_wgrad(p, ch, a, <int> u, _row_edge(G, s, P), _row_edge(G, s + 1, P))
    else:
        _chunk_input_gradient(p, ch, a, arg)


cdef inline int64_t _row_edge(int64_t G, int64_t s, int64_t P) noexcept nogil:
    # where slice s of P of G gate rows starts (G at s = P)
    if s >= P:
        return G
    return (G * s // P) // _WG_ROW_ALIGN * _WG_ROW_ALIGN
