# Backpropagation through time on packed W_hh (csrc/fl_backward.h), float32
# only; included after _packed.pxi, whose packing helpers it shares.


cdef extern from "csrc/fl_backward.h":
    ctypedef struct fl_bseq:
        int cell
        int reverse
        int exact
        int64_t T, B, H
        float* dg
        float* aux
        const float* c0
        const float* dy
        int64_t ldy
        float* dh
        float* dc
        const float* wp
        const int32_t* nact
        const int64_t* toff
        const int32_t* dbrow
    int64_t fl_backward_panels(int64_t H) noexcept nogil
    int64_t fl_backward_size(int cell, int64_t H) noexcept nogil
    void fl_pack_backward(int cell, int64_t H, const float* w_hh, float* wp) noexcept nogil
    void fl_bseq_run(const fl_bseq* s, int64_t r0, int64_t r1, double* db) noexcept nogil
    void fl_bseq_run_gang(const fl_bseq* s, int64_t r0, int64_t r1, double* db,
                          fl_gang* gang) noexcept nogil
    void fl_backward_gemm(int cell, int64_t rows, int64_t mr, int64_t H, const float* a,
                          int64_t lda, const float* wp, float* out, int64_t ldout) noexcept nogil


def packed_backward_panels(int64_t hidden_size):
    """Panels of dL/dh columns the backward's product is cut into (four vectors each)."""
    return fl_backward_panels(hidden_size)


def pack_backward(int cell, const float[:, ::1] w_hh):
    """Pack one layer-direction's W_hh ((G*H, H), PyTorch's layout) for the backward tile."""
    _check_cell(cell)
    cdef int64_t H = w_hh.shape[1]
    if H < 1 or w_hh.shape[0] != fl_cell_gates(cell) * H:
        raise ValueError("pack_backward: w_hh must be (G*H, H)")
    wp = aligned_empty(fl_backward_size(cell, H))
    cdef float[::1] wpv = wp
    with nogil:
        fl_pack_backward(cell, H, &w_hh[0, 0], &wpv[0])
    return wp


def packed_backward(int cell, float[:, ::1] dg, aux, c0, const float[::1] wp,
                    const float[:, ::1] dy, int64_t dy_offset, float[:, ::1] dh, dc,
                    double[::1] db, const int32_t[::1] nact, toff, bint reverse,
                    int64_t r0, int64_t r1, bint exact=True, db_chunk=None,
                    Gang gang=None):
    """Backpropagate rows [r0, r1) of one layer-direction through time (GIL released).

    Time-major buffers are given as rows: ``dg`` (rows, G*H) holds the
    forward's activations on entry and dG on exit; ``aux`` (rows,
    packed_aux * H) the forward's aux store (None if the cell keeps none: the
    LSTM's cell states; the GRU's, which receives the recurrent side's
    dG_h); ``dy`` (rows, >= offset + H) the
    gradient of the outputs.  ``toff`` None: the padded layout, step t at
    rows [t*B, (t+1)*B), rows = T*B (dG of rows not running is zeroed);
    else the packed-sequence layout of :func:`packed_forward_rows`.
    ``c0`` and ``dh``/``dc`` are (B, H): the initial second state (a cell with
    two, else None), and the
    gradients of the final states on entry, of the initial states on exit;
    the column sums of dG are added to ``db``; ``wp`` is W_hh from
    :func:`pack_backward`.  With ``db_chunk`` (B int32, the chunk of each
    row), ``db`` holds one G*H row of sums per chunk (flattened) and row r's
    go to chunk ``db_chunk[r]``: each chunk's sums are then the same however
    [r0, r1) is cut.  With a :class:`Gang`, the threads calling with it (the
    same arguments) share each step by hidden units: every row's gate
    gradients in one ticket, then ``gang.chunk`` panels of dL/dh a ticket;
    the same bits as one thread alone.
    """
    cdef fl_bseq s
    cdef int64_t T = nact.shape[0], B = dh.shape[0], H = dh.shape[1], t
    cdef int64_t N = dg.shape[0]
    cdef float[:, ::1] auxv
    cdef float[:, ::1] c0v
    cdef float[:, ::1] dcv
    cdef const int64_t[::1] tv
    cdef const int32_t[::1] chunkv
    _check_cell(cell)
    if (dg.shape[1] != fl_cell_gates(cell) * H or wp.shape[0] != fl_backward_size(cell, H)
            or db.shape[0] % dg.shape[1] != 0 or db.shape[0] == 0):
        raise ValueError("packed_backward: dg, wp, dh and db do not align")
    if dy.shape[0] != N or dy_offset < 0 or dy_offset + H > dy.shape[1]:
        raise ValueError("packed_backward: dy must be (rows, >= offset + H)")
    if not 0 <= r0 <= r1 <= B:
        raise ValueError("packed_backward: bad row range")
    for t in range(T):
        if nact[t] < 0 or nact[t] > r1 - r0 or (t > 0 and nact[t] > nact[t - 1]):
            raise ValueError("nact must count running rows, non-increasing in time")
    s.dbrow = NULL
    if db_chunk is None:
        if db.shape[0] != dg.shape[1]:
            raise ValueError("packed_backward: db must hold G*H sums")
    else:
        chunkv = db_chunk
        if chunkv.shape[0] != B:
            raise ValueError("packed_backward: db_chunk must give one chunk per row")
        for t in range(r0, r1):
            if chunkv[t] < 0 or (chunkv[t] + 1) * dg.shape[1] > db.shape[0]:
                raise ValueError("packed_backward: db_chunk names a chunk db does not hold")
        s.dbrow = &chunkv[0]
    s.toff = NULL
    if toff is None:
        if N != T * B:
            raise ValueError("packed_backward: padded rows must be T*B")
    else:
        tv = toff
        _check_toff(tv, nact, r0, N)
        s.toff = &tv[0]
    if N == 0:
        return
    s.cell = cell
    s.reverse = reverse
    s.exact = exact
    s.T, s.B, s.H = T, B, H
    s.dg = &dg[0, 0]
    s.aux = NULL
    s.c0 = NULL
    s.dc = NULL
    if fl_cell_aux(cell) > 0:
        auxv = aux
        if auxv.shape[0] != N or auxv.shape[1] != fl_cell_aux(cell) * H:
            raise ValueError("packed_backward: aux (rows, packed_aux * H) expected")
        s.aux = &auxv[0, 0]
    if fl_cell_states(cell) == 2:
        c0v = c0
        dcv = dc
        if c0v.shape[0] != B or c0v.shape[1] != H or dcv.shape[0] != B or dcv.shape[1] != H:
            raise ValueError("packed_backward: c0 and dc (B, H) expected")
        s.c0 = &c0v[0, 0]
        s.dc = &dcv[0, 0]
    s.dy = &dy[0, dy_offset]
    s.ldy = dy.shape[1]
    s.dh = &dh[0, 0]
    s.wp = &wp[0]
    s.nact = &nact[0]
    cdef fl_gang* gp = NULL if gang is None else gang.ptr
    with nogil:
        if gp == NULL:
            fl_bseq_run(&s, r0, r1, &db[0])
        else:
            fl_bseq_run_gang(&s, r0, r1, &db[0], gp)


def backward_gemm(int cell, const float[:, ::1] a, const float[::1] wp, int64_t hidden_size,
                  int64_t tile_rows=0):
    """The backward tile's product a W_hh for a W_hh from :func:`pack_backward` (for tests)."""
    cdef int64_t rows = a.shape[0], H = hidden_size
    _check_cell(cell)
    if H < 1 or a.shape[1] != fl_cell_gates(cell) * H or wp.shape[0] != fl_backward_size(cell, H):
        raise ValueError("backward_gemm: shapes do not align")
    out = np.empty((rows, H), dtype=np.float32)
    cdef float[:, ::1] ov = out
    if rows:
        with nogil:
            fl_backward_gemm(cell, rows, tile_rows, H, &a[0, 0], a.shape[1], &wp[0], &ov[0, 0], H)
    return out
