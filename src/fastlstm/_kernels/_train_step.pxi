# The compiled training step's step: the chunks' partial gradients reduced,
# the loss, the gradients and their norm checked, clipping and one Adam step
# over the flat buffers, undone if the weights come out non-finite.  Both the
# reduction and the update come in slices (TrainPlan.n_slices, fixed by the
# shapes) that a run's threads take as tickets (_train_run.pxi); one call per
# batch takes them in turn, with the same bits.  Included after _train.pxi.


cdef int _plan_units(_PlanC* pc, keep) except -1:
    # the reduction's units (fixed by the shapes, so the squared norm's
    # order is too) and their split into slices of about equal size
    cdef int64_t G = pc.G, H = pc.H, K = pc.K, u, s, total, acc
    sizes = []
    for l in range(pc.NL):
        sizes += [(_U_W_IH, l, G * pc.lay[l].NI), (_U_W_HH, l, G * H), (_U_BIAS, l, G)]
    sizes += [(_U_W_OUT, 0, K * H * pc.D), (_U_B_OUT, 0, K)]
    units = []
    for kind, l, n in sizes:
        if kind in (_U_BIAS, _U_B_OUT):
            units.append((kind, l, 0, n))
        else:
            units.extend((kind, l, o, min(_UNIT, n - o)) for o in range(0, n, _UNIT))
    pc.n_units = len(units)
    pc.units = <_UnitC*> PyMem_Malloc(pc.n_units * sizeof(_UnitC))
    if pc.units == NULL:
        raise MemoryError()
    for u, (kind, l, o, n) in enumerate(units):
        pc.units[u].kind, pc.units[u].layer = kind, l
        pc.units[u].off, pc.units[u].n = o, n
    total = sum(n * (2 if kind == _U_BIAS else 1) for kind, _, _, n in units)
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
    return 0


cdef double _plan_loss(const _PlanC* p) noexcept nogil:
    # the mini-batch's loss from the chunks' weighted sums, in chunk order
    cdef double lsum = 0, wsum = 0
    cdef int64_t c
    for c in range(p.n_chunks):
        lsum += p.ch[c].part[0]
        wsum += p.ch[c].part[1]
    if wsum <= 0:
        return 0.0
    if p.loss == _CE:
        return lsum / wsum
    return lsum / (wsum * p.K)


cdef void _plan_reduce_slice(const _PlanC* p, const _Grads* d, int64_t s) noexcept nogil:
    # slice s of the reduction: its units' partials summed in chunk order
    # (((p_0 + p_1) + p_2) + ...: whatever thread formed each), and each unit's
    # squared norm in float64
    cdef int64_t u, c, j, o, n, nc = p.n_chunks
    cdef int l
    cdef double v, sq, sq_h
    cdef const _ChunkC* ch = p.ch
    cdef const _UnitC* un
    cdef float* dst
    for u in range(p.su[s], p.su[s + 1]):
        un = &p.units[u]
        o, n, l = un.off, un.n, un.layer
        if un.kind == _U_BIAS:
            sq, sq_h = 0, 0
            for j in range(n):
                v = 0
                for c in range(nc):
                    v += ch[c].ly[l].db[j]
                d.b_ih[l][j] = <float> v
                sq += <double> d.b_ih[l][j] * <double> d.b_ih[l][j]
                v = 0
                for c in range(nc):
                    v += ch[c].ly[l].db_hh[j]
                d.b_hh[l][j] = <float> v
                sq_h += <double> d.b_hh[l][j] * <double> d.b_hh[l][j]
            p.sq_units[u] = sq + sq_h
        elif un.kind == _U_B_OUT:
            sq = 0
            for j in range(n):
                v = 0
                for c in range(nc):
                    v += ch[c].db_out[j]
                d.b_out[j] = <float> v
                sq += <double> d.b_out[j] * <double> d.b_out[j]
            p.sq_units[u] = sq
        else:
            dst = _unit_array(un, d.w_ih[l], d.w_hh[l], d.w_out) + o
            memcpy(dst, _unit_array(un, ch[0].ly[l].g_ih, ch[0].ly[l].g_hh, ch[0].g_out) + o,
                   n * sizeof(float))
            for c in range(1, nc):
                _add_into(dst, _unit_array(un, ch[c].ly[l].g_ih, ch[c].ly[l].g_hh,
                                           ch[c].g_out) + o, n)
            p.sq_units[u] = _sum_squares(dst, n)


cdef inline float* _unit_array(const _UnitC* un, float* w_ih, float* w_hh,
                               float* w_out) noexcept nogil:
    # the array of a weight unit's kind, among its layer's two weights and the readout's
    if un.kind == _U_W_IH:
        return w_ih
    return w_hh if un.kind == _U_W_HH else w_out


cdef double _plan_sq(const _PlanC* p) noexcept nogil:
    # the squared global norm: the units' in unit order (parameter order)
    cdef double sq = 0
    cdef int64_t u
    for u in range(p.n_units):
        sq += p.sq_units[u]
    return sq


cdef double _plan_reduce(const _PlanC* p, const _Grads* d) noexcept nogil:
    # the partials summed in chunk order; the squared norm (float64, per unit, in order)
    cdef int64_t s
    for s in range(p.n_slices):
        _plan_reduce_slice(p, d, s)
    return _plan_sq(p)


cdef int _plan_check(const _PlanC* p, fl_adam_args* a, double clip_norm, double* loss_out,
                     double* sq_out) noexcept nogil:
    # after the reduction: the loss, the chunks' status and the norm checked,
    # the clip scale set; 0, or the code of what is not finite
    cdef double loss = _plan_loss(p), sq = _plan_sq(p), norm
    cdef int64_t c
    cdef int any_status = 0
    for c in range(p.n_chunks):
        any_status |= p.ch[c].status[0] != 0
    loss_out[0], sq_out[0] = loss, sq
    norm = c_sqrt(sq) if sq >= 0 else NAN
    if not isfinite(loss):
        return 1
    if any_status:
        return 2
    if not isfinite(norm):
        return 3
    if clip_norm >= 0 and norm > clip_norm:
        a.do_clip = 1
        a.clip_scale = clip_norm / (norm + 1e-6)
    return 0


cdef void _plan_adam_slice(const _PlanC* p, const _Flat* f, const fl_adam_args* a,
                           int64_t s) noexcept nogil:
    # slice s of the update: its share of the flat buffers (whole cache lines);
    # the update is element by element, so the slices give the bits of one pass
    cdef int64_t S = p.n_slices, lo = (f.n * s // S) & ~(<int64_t> 15)
    cdef int64_t hi = f.n if s == S - 1 else (f.n * (s + 1) // S) & ~(<int64_t> 15)
    p.ok[s] = fl_adam_f32(f.p + lo, f.g + lo, f.m + lo, f.v + lo, hi - lo, a,
                          f.s0 + lo, f.s1 + lo, f.s2 + lo)


cdef int _plan_updated(const _PlanC* p) noexcept nogil:
    # 1 if every slice's updated weights are finite
    cdef int64_t s
    cdef int ok = 1
    for s in range(p.n_slices):
        ok &= p.ok[s] != 0
    return ok


cdef void _plan_undo(const _Flat* f) noexcept nogil:
    # parameters and moments as they were before the update
    memcpy(f.p, f.s0, f.n * sizeof(float))
    memcpy(f.m, f.s1, f.n * sizeof(float))
    memcpy(f.v, f.s2, f.n * sizeof(float))


cdef int _plan_step(const _PlanC* p, const _Grads* d, const _Flat* f, fl_adam_args* a,
                    double clip_norm, double* loss_out, double* sq_out) noexcept nogil:
    # reduce, the checks, clipping and one Adam step (undone if the weights come
    # out non-finite), slice after slice: what a run's step tickets do
    cdef int64_t s
    cdef int code
    _plan_reduce(p, d)
    code = _plan_check(p, a, clip_norm, loss_out, sq_out)
    if code != 0:
        return code
    for s in range(p.n_slices):
        _plan_adam_slice(p, f, a, s)
    if not _plan_updated(p):
        _plan_undo(f)
        return 4
    return 0


cdef double _sum_squares(const float* a, int64_t n) noexcept nogil:
    # eight running sums (element j in sum j % 8), combined pairwise: a fixed
    # order from n alone, and eight independent additions a round instead of
    # one chain of n (the serial step's longest part at H = 64)
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, t = 0
    cdef double v0, v1, v2, v3, v4, v5, v6, v7
    cdef int64_t j = 0
    while j + 8 <= n:
        v0, v1, v2, v3 = a[j], a[j + 1], a[j + 2], a[j + 3]
        v4, v5, v6, v7 = a[j + 4], a[j + 5], a[j + 6], a[j + 7]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        s4 += v4 * v4
        s5 += v5 * v5
        s6 += v6 * v6
        s7 += v7 * v7
        j += 8
    while j < n:
        t += <double> a[j] * <double> a[j]
        j += 1
    return (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) + t


cdef void _add_into(float* out, const float* part, int64_t n) noexcept nogil:
    cdef int64_t j
    for j in range(n):
        out[j] += part[j]
