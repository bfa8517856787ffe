# The packed-weight SIMD kernels (csrc/fl_packed*.c), float32 only.  Each
# _cells_<level> module links the C file of its instruction set; the portable
# one links stubs and reports width 0, and the layer then runs the BLAS path.
from libc.stdint cimport int64_t
from cpython.mem cimport PyMem_Malloc, PyMem_Free

import math


cdef extern from "csrc/fl_packed.h":
    ctypedef struct fl_gang:
        pass
    ctypedef struct fl_seq:
        int cell
        int reverse
        int exact
        int64_t T, B, NI, H
        const float* x
        int64_t ldx, xts
        const float* wp
        const float* bp
        const float* h0
        float* c
        int64_t ldc
        float* out
        int64_t ldo, ots
        float* acts
        float* aux
        const int32_t* nact
        const int64_t* toff
    void fl_gang_init(fl_gang* g, long long chunk) noexcept nogil
    int fl_cell_count() noexcept nogil
    const char* fl_cell_name(int cell) noexcept nogil
    int fl_cell_gates(int cell) noexcept nogil
    int fl_cell_states(int cell) noexcept nogil
    int fl_cell_aux(int cell) noexcept nogil
    int64_t fl_packed_width() noexcept nogil
    int64_t fl_packed_tile_rows() noexcept nogil
    int64_t fl_packed_units(int cell) noexcept nogil
    int64_t fl_packed_panels(int cell, int64_t H) noexcept nogil
    int64_t fl_packed_size(int cell, int64_t I, int64_t H) noexcept nogil
    int64_t fl_packed_bias_size(int cell, int64_t H) noexcept nogil
    void fl_pack(int cell, int64_t I, int64_t H, const float* w_ih, const float* w_hh,
                 const float* b_ih, const float* b_hh, float* wp, float* bp) noexcept nogil
    void fl_pack_panels(int cell, int64_t I, int64_t H, const float* w_ih, const float* w_hh,
                        const float* b_ih, const float* b_hh, float* wp, float* bp,
                        int64_t p0, int64_t p1) noexcept nogil
    void fl_seq_run(const fl_seq* s, int64_t r0, int64_t r1, int64_t p0, int64_t p1,
                    fl_gang* gang) noexcept nogil
    void fl_packed_gemm(int cell, int64_t rows, int64_t mr, int64_t I, int64_t H, const float* x,
                        int64_t ldx, const float* h, int64_t ldh, const float* wp,
                        const float* bp, float* out, int64_t ldout) noexcept nogil
    void fl_sigmoid_n(const float* x, float* y, int64_t n) noexcept nogil
    void fl_tanh_n(const float* x, float* y, int64_t n) noexcept nogil
    double fl_fma_peak(int64_t iters) noexcept nogil

# CELL_<NAME>: the kernels' code of each cell they run (csrc/fl_cells.h)
for _code in range(fl_cell_count()):
    globals()["CELL_" + fl_cell_name(_code).decode().upper()] = _code


def _cell_code(name):
    for code in range(fl_cell_count()):
        if fl_cell_name(code).decode() == name:
            return code
    raise ValueError(f"the packed kernels know no cell {name!r}")


# the cell whose step carries a cell state beside h (the stepper's two-state path)
_CELL_WITH_C = _cell_code("lstm")


cdef _check_cell(int cell):
    """The cell's code is known and this variant has packed kernels."""
    if fl_packed_width() == 0:
        raise RuntimeError("this kernel variant has no packed kernels")
    if not 0 <= cell < fl_cell_count():
        raise ValueError(f"unknown cell code {cell}")


def aligned_empty(shape, dtype=np.float32):
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary.

    The kernels stream packed weights with whole-vector loads; a vector that
    straddles two cache lines costs a second access (25% of the step time,
    measured, at NumPy's default 16-byte alignment).
    """
    dtype = np.dtype(dtype)
    n = math.prod(shape) if isinstance(shape, tuple) else int(shape)
    raw = np.empty(n * dtype.itemsize + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def packed_width():
    """Floats per SIMD vector of this variant's packed kernels (0: none, use BLAS)."""
    return fl_packed_width()


def packed_tile_rows():
    """Batch rows of this variant's register tile."""
    return fl_packed_tile_rows()


def packed_units(int cell):
    """Hidden units one packed panel covers for ``cell`` (a ``CELL_*`` code)."""
    _check_cell(cell)
    return fl_packed_units(cell)


def packed_panels(int cell, int64_t hidden_size):
    """Panels the packed weights of a layer with ``hidden_size`` units have."""
    _check_cell(cell)
    return fl_packed_panels(cell, hidden_size)


def packed_aux(int cell):
    """Floats per row, in units of hidden_size, of what a cell's training forward
    keeps beside its activations for backward (0: nothing; the LSTM's c_t)."""
    _check_cell(cell)
    return fl_cell_aux(cell)


def packed_states(int cell):
    """States the cell carries: 1 (h) or 2 (h and c, updated in place in ``c``)."""
    _check_cell(cell)
    return fl_cell_states(cell)


def pack(int cell, const float[:, ::1] w_ih, const float[:, ::1] w_hh,
         const float[::1] b_ih, const float[::1] b_hh):
    """Pack one layer-direction's weights for the micro-kernels: returns (wp, bp).

    ``w_ih`` is (G*H, I), ``w_hh`` (G*H, H), the biases (G*H,), in PyTorch's
    layout (G gate blocks: 4 for the LSTM, 1 for the RNN).
    """
    _check_cell(cell)
    cdef int64_t H = w_hh.shape[1], I = w_ih.shape[1], G = fl_cell_gates(cell) * H
    if (w_ih.shape[0] != G or w_hh.shape[0] != G or b_ih.shape[0] != G
            or b_hh.shape[0] != G or I < 1 or H < 1):
        raise ValueError("pack: weight shapes do not match the cell")
    wp = aligned_empty(fl_packed_size(cell, I, H))
    bp = aligned_empty(fl_packed_bias_size(cell, H))
    cdef float[::1] wpv = wp
    cdef float[::1] bpv = bp
    with nogil:
        fl_pack(cell, I, H, &w_ih[0, 0], &w_hh[0, 0], &b_ih[0], &b_hh[0], &wpv[0], &bpv[0])
    return wp, bp


cdef class Gang:
    """The shared schedule of the threads that split one recurrence by hidden units.

    Threads calling :func:`packed_forward` with the same gang take chunks of
    ``chunk`` panels, step by step, from one counter (csrc/fl_gang.h): any
    number of threads may join, and one alone finishes the work.  A gang runs
    one sequence once.
    """

    cdef fl_gang* ptr
    cdef void* raw
    cdef readonly long long chunk

    def __cinit__(self, long long chunk):
        if chunk < 1:
            raise ValueError("a gang's chunk needs at least one panel")
        # the counters on cache lines of their own
        self.raw = PyMem_Malloc(sizeof(fl_gang) + 128)
        if self.raw == NULL:
            raise MemoryError()
        self.ptr = <fl_gang*> ((<size_t> self.raw + 63) & ~(<size_t> 63))
        fl_gang_init(self.ptr, chunk)
        self.chunk = chunk

    def __dealloc__(self):
        PyMem_Free(self.raw)


def packed_forward(int cell, const float[:, :, ::1] x, const float[::1] wp, const float[::1] bp,
                   const float[:, ::1] h0, c, float[:, :, ::1] out, int64_t out_offset,
                   acts, aux, const int32_t[::1] nact, bint reverse,
                   int64_t r0, int64_t r1, int64_t p0, int64_t p1, Gang gang=None,
                   bint exact=True, bint batch_first=False):
    """Run rows [r0, r1) and panels [p0, p1) of one layer-direction's recurrence (GIL released).

    ``x`` is (T, B, I) (or (B, T, I) with ``batch_first``, and ``out``
    alike); ``h0`` (B, H); ``c`` the second state of a cell with two (the
    LSTM's cell state, (B, >= panels*width), c0 in, final out; None
    otherwise); ``out`` (T, B, >= offset + H) receives h_t; ``acts`` (T, B,
    G*H) and ``aux`` (T, B, :func:`packed_aux` * H; None if 0) keep what
    backward needs (None in inference); ``nact[t]`` counts the running rows from r0.  With
    ``gang``, every thread calls with the same arguments and they share the
    panels of each step (``p0``, ``p1`` are then ignored).
    ``exact=False`` lets tiles shorter than the register tile split k into
    streams (faster at tiny batches; a row's rounding then depends on how
    many rows share its tile).
    """
    cdef fl_seq s
    cdef int64_t T = x.shape[1 if batch_first else 0], B = x.shape[0 if batch_first else 1]
    cdef int64_t I = x.shape[2], H = h0.shape[1]
    cdef int64_t npan
    cdef int64_t out_t = out.shape[1 if batch_first else 0], out_b = out.shape[0 if batch_first else 1]
    cdef float[:, ::1] cv
    cdef float[:, :, ::1] av
    cdef float[:, :, ::1] sv
    cdef fl_gang* gp = NULL
    cdef int64_t t
    _check_cell(cell)
    npan = fl_packed_panels(cell, H)
    if wp.shape[0] != fl_packed_size(cell, I, H) or bp.shape[0] != fl_packed_bias_size(cell, H):
        raise ValueError("packed weights do not match x and h0")
    if h0.shape[0] != B or out_t != T or out_b != B or out_offset < 0 \
            or out_offset + H > out.shape[2] or nact.shape[0] != T:
        raise ValueError("packed_forward: shapes do not align")
    if not (0 <= r0 <= r1 <= B and 0 <= p0 <= p1 <= npan):
        raise ValueError("packed_forward: bad row or panel range")
    s.cell = cell
    s.reverse = reverse
    s.exact = exact
    s.T, s.B, s.NI, s.H = T, B, I, H
    s.x = &x[0, 0, 0]
    s.ldx = T * I if batch_first else I
    s.xts = I if batch_first else B * I
    s.wp = &wp[0]
    s.bp = &bp[0]
    s.h0 = &h0[0, 0]
    s.c = NULL
    s.ldc = 0
    s.out = &out[0, 0, out_offset]
    s.ldo = T * out.shape[2] if batch_first else out.shape[2]
    s.ots = out.shape[2] if batch_first else B * out.shape[2]
    if batch_first and (acts is not None or aux is not None):
        raise ValueError("training buffers are time-major: run time-major to keep them")
    s.acts = NULL
    s.aux = NULL
    s.nact = &nact[0]
    s.toff = NULL
    if fl_cell_states(cell) == 2:
        cv = c
        if cv.shape[0] != B or cv.shape[1] < npan * fl_packed_width():
            raise ValueError("c must be (B, >= panels * width)")
        s.c = &cv[0, 0]
        s.ldc = cv.shape[1]
    if (acts is None) != (aux is None) and fl_cell_aux(cell) > 0:
        raise ValueError("a training forward keeps both acts and aux")
    if acts is not None:
        av = acts
        if av.shape[0] != T or av.shape[1] != B or av.shape[2] != fl_cell_gates(cell) * H:
            raise ValueError("acts must be (T, B, G*H)")
        s.acts = &av[0, 0, 0]
    if aux is not None:
        if fl_cell_aux(cell) == 0:
            raise ValueError("this cell keeps no aux store")
        sv = aux
        if sv.shape[0] != T or sv.shape[1] != B or sv.shape[2] != fl_cell_aux(cell) * H:
            raise ValueError("aux must be (T, B, packed_aux(cell) * H)")
        s.aux = &sv[0, 0, 0]
    for t in range(T):
        if nact[t] < 0 or nact[t] > r1 - r0 or (t > 0 and nact[t] > nact[t - 1]):
            raise ValueError("nact must count running rows, non-increasing in time")
    if gang is not None:
        gp = gang.ptr
    with nogil:
        fl_seq_run(&s, r0, r1, p0, p1, gp)


def _check_toff(const int64_t[::1] toff, const int32_t[::1] nact, int64_t r0, int64_t rows):
    """toff[t] + r0 + nact[t] <= rows at every step with running rows, offsets
    non-decreasing."""
    cdef int64_t t, T = nact.shape[0]
    if toff.shape[0] != T:
        raise ValueError("toff must have one offset per step")
    for t in range(T):
        if (toff[t] < 0 or (nact[t] > 0 and toff[t] + r0 + nact[t] > rows)
                or (t > 0 and toff[t] < toff[t - 1])):
            raise ValueError("toff does not fit the packed rows")


def packed_forward_rows(int cell, const float[:, ::1] x, const float[::1] wp, const float[::1] bp,
                        const float[:, ::1] h0, c, float[:, ::1] out, int64_t out_offset,
                        acts, aux, const int32_t[::1] nact, const int64_t[::1] toff,
                        bint reverse, int64_t r0, int64_t r1, bint exact=True):
    """:func:`packed_forward` on the packed-sequence layout (rows of the batch ``r0``..``r1``).

    ``x`` (N, I), ``out`` (N, >= offset + H), ``acts`` (N, G*H) and
    ``aux`` (N, packed_aux * H) hold only running rows: step t's rows start at row
    ``toff[t]`` (row r of the batch, sorted by decreasing length, at
    ``toff[t] + r``), N = the sum of the lengths.  ``h0`` and ``c`` are
    (B, ...) as for :func:`packed_forward`.
    """
    cdef fl_seq s
    cdef int64_t T = nact.shape[0], B = h0.shape[0], N = x.shape[0]
    cdef int64_t I = x.shape[1], H = h0.shape[1], t
    cdef int64_t npan
    cdef float[:, ::1] cv
    cdef float[:, ::1] av
    cdef float[:, ::1] sv
    _check_cell(cell)
    npan = fl_packed_panels(cell, H)
    if wp.shape[0] != fl_packed_size(cell, I, H) or bp.shape[0] != fl_packed_bias_size(cell, H):
        raise ValueError("packed weights do not match x and h0")
    if out.shape[0] != N or out_offset < 0 or out_offset + H > out.shape[1]:
        raise ValueError("packed_forward_rows: out must be (N, >= offset + H)")
    if not 0 <= r0 <= r1 <= B:
        raise ValueError("packed_forward_rows: bad row range")
    for t in range(T):
        if nact[t] < 0 or nact[t] > r1 - r0 or (t > 0 and nact[t] > nact[t - 1]):
            raise ValueError("nact must count running rows, non-increasing in time")
    _check_toff(toff, nact, r0, N)
    s.cell = cell
    s.reverse = reverse
    s.exact = exact
    s.T, s.B, s.NI, s.H = T, B, I, H
    s.x = &x[0, 0] if N else NULL
    s.ldx = I
    s.xts = 0
    s.wp = &wp[0]
    s.bp = &bp[0]
    s.h0 = &h0[0, 0]
    s.c = NULL
    s.ldc = 0
    s.out = &out[0, out_offset] if N else NULL
    s.ldo = out.shape[1]
    s.ots = 0
    s.acts = NULL
    s.aux = NULL
    s.nact = &nact[0]
    s.toff = &toff[0]
    if fl_cell_states(cell) == 2:
        cv = c
        if cv.shape[0] != B or cv.shape[1] < npan * fl_packed_width():
            raise ValueError("c must be (B, >= panels * width)")
        s.c = &cv[0, 0]
        s.ldc = cv.shape[1]
    if (acts is None) != (aux is None) and fl_cell_aux(cell) > 0:
        raise ValueError("a training forward keeps both acts and aux")
    if acts is not None:
        av = acts
        if av.shape[0] != N or av.shape[1] != fl_cell_gates(cell) * H:
            raise ValueError("acts must be (N, G*H)")
        s.acts = &av[0, 0] if N else NULL
    if aux is not None:
        if fl_cell_aux(cell) == 0:
            raise ValueError("this cell keeps no aux store")
        sv = aux
        if sv.shape[0] != N or sv.shape[1] != fl_cell_aux(cell) * H:
            raise ValueError("aux must be (N, packed_aux(cell) * H)")
        s.aux = &sv[0, 0] if N else NULL
    if N == 0:
        return
    with nogil:
        fl_seq_run(&s, r0, r1, 0, npan, NULL)


def packed_gemm(int cell, const float[:, ::1] x, const float[:, ::1] h, const float[::1] wp,
                const float[::1] bp, int64_t tile_rows=0):
    """The raw tile product [x | h] W_packed + b, in packed column order (for tests).

    Rows go through register tiles of ``tile_rows`` (default: the full tile).
    """
    cdef int64_t rows = x.shape[0], I = x.shape[1], H = h.shape[1]
    cdef int64_t npan
    _check_cell(cell)
    npan = fl_packed_panels(cell, H)
    if h.shape[0] != rows or wp.shape[0] != fl_packed_size(cell, I, H):
        raise ValueError("packed_gemm: shapes do not align")
    out = np.empty((rows, npan * 4 * fl_packed_width()), dtype=np.float32)
    cdef float[:, ::1] ov = out
    if rows:
        with nogil:
            fl_packed_gemm(cell, rows, tile_rows, I, H, &x[0, 0], I, &h[0, 0], H, &wp[0], &bp[0],
                           &ov[0, 0], ov.shape[1])
    return out


def packed_sigmoid(const float[::1] x):
    """The kernels' vector sigmoid over ``x`` (for tests of its error)."""
    y = np.empty(x.shape[0], dtype=np.float32)
    cdef float[::1] yv = y
    if x.shape[0]:
        fl_sigmoid_n(&x[0], &yv[0], x.shape[0])
    return y


def packed_tanh(const float[::1] x):
    """The kernels' vector tanh over ``x`` (for tests of its error)."""
    y = np.empty(x.shape[0], dtype=np.float32)
    cdef float[::1] yv = y
    if x.shape[0]:
        fl_tanh_n(&x[0], &yv[0], x.shape[0])
    return y


def fma_peak_flops(int64_t iters):
    """Run a register-only FMA loop of ``iters`` iterations (GIL released); return its flops."""
    cdef double flops
    with nogil:
        flops = fl_fma_peak(iters)
    return flops
