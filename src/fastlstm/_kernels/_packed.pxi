# The packed-weight SIMD kernels (csrc/fl_packed*.c), float32 only.  Each
# _cells_<level> module links the C file of its instruction set; the portable
# one links stubs and reports width 0, and the layer then runs the BLAS path.
from libc.stdint cimport int64_t
from cpython.mem cimport PyMem_Malloc, PyMem_Free


cdef extern from "csrc/fl_packed.h":
    ctypedef struct fl_barrier:
        pass
    ctypedef struct fl_seq:
        int cell
        int reverse
        int64_t T, B, NI, H
        const float* x
        int64_t ldx
        const float* wp
        const float* bp
        const float* h0
        float* c
        int64_t ldc
        float* out
        int64_t ldo
        float* acts
        float* cstore
        const int32_t* nact
    void fl_barrier_init(fl_barrier* b, long n) noexcept nogil
    int64_t fl_packed_width() noexcept nogil
    int64_t fl_packed_tile_rows() noexcept nogil
    int64_t fl_packed_units(int cell) noexcept nogil
    int64_t fl_packed_panels(int cell, int64_t H) noexcept nogil
    int64_t fl_packed_size(int cell, int64_t I, int64_t H) noexcept nogil
    int64_t fl_packed_bias_size(int cell, int64_t H) noexcept nogil
    void fl_pack(int cell, int64_t I, int64_t H, const float* w_ih, const float* w_hh,
                 const float* b_ih, const float* b_hh, float* wp, float* bp) noexcept nogil
    void fl_seq_run(const fl_seq* s, int64_t r0, int64_t r1, int64_t p0, int64_t p1,
                    fl_barrier* bar) noexcept nogil
    void fl_packed_gemm(int cell, int64_t rows, int64_t I, int64_t H, const float* x,
                        int64_t ldx, const float* h, int64_t ldh, const float* wp,
                        const float* bp, float* out, int64_t ldout) noexcept nogil
    void fl_sigmoid_n(const float* x, float* y, int64_t n) noexcept nogil
    void fl_tanh_n(const float* x, float* y, int64_t n) noexcept nogil
    double fl_fma_peak(int64_t iters) noexcept nogil

CELL_LSTM = 0
CELL_RNN = 1
_CELL_GATES = (4, 1)


def packed_width():
    """Floats per SIMD vector of this variant's packed kernels (0: none, use BLAS)."""
    return fl_packed_width()


def packed_tile_rows():
    """Batch rows of this variant's register tile."""
    return fl_packed_tile_rows()


def packed_units(int cell):
    """Hidden units one packed panel covers for ``cell`` (CELL_LSTM or CELL_RNN)."""
    return fl_packed_units(cell)


def packed_panels(int cell, int64_t hidden_size):
    """Panels the packed weights of a layer with ``hidden_size`` units have."""
    return fl_packed_panels(cell, hidden_size)


def pack(int cell, const float[:, ::1] w_ih, const float[:, ::1] w_hh,
         const float[::1] b_ih, const float[::1] b_hh):
    """Pack one layer-direction's weights for the micro-kernels: returns (wp, bp).

    ``w_ih`` is (G*H, I), ``w_hh`` (G*H, H), the biases (G*H,), in PyTorch's
    layout (G = 4 for the LSTM, 1 for the RNN).
    """
    if fl_packed_width() == 0:
        raise RuntimeError("this kernel variant has no packed kernels")
    if cell not in (CELL_LSTM, CELL_RNN):
        raise ValueError("unknown cell")
    cdef int64_t H = w_hh.shape[1], I = w_ih.shape[1], G = _CELL_GATES[cell] * H
    if (w_ih.shape[0] != G or w_hh.shape[0] != G or b_ih.shape[0] != G
            or b_hh.shape[0] != G or I < 1 or H < 1):
        raise ValueError("pack: weight shapes do not match the cell")
    wp = np.empty(fl_packed_size(cell, I, H), dtype=np.float32)
    bp = np.empty(fl_packed_bias_size(cell, H), dtype=np.float32)
    cdef float[::1] wpv = wp
    cdef float[::1] bpv = bp
    with nogil:
        fl_pack(cell, I, H, &w_ih[0, 0], &w_hh[0, 0], &b_ih[0], &b_hh[0], &wpv[0], &bpv[0])
    return wp, bp


cdef class Barrier:
    """A spin barrier for ``n`` threads that split one recurrence by hidden units."""

    cdef fl_barrier* ptr
    cdef void* raw
    cdef readonly long parties

    def __cinit__(self, long n):
        if n < 1:
            raise ValueError("a barrier needs at least one party")
        # a cache line of its own, so the spinning threads share nothing else
        self.raw = PyMem_Malloc(sizeof(fl_barrier) + 128)
        if self.raw == NULL:
            raise MemoryError()
        self.ptr = <fl_barrier*> ((<size_t> self.raw + 63) & ~(<size_t> 63))
        fl_barrier_init(self.ptr, n)
        self.parties = n

    def __dealloc__(self):
        PyMem_Free(self.raw)


def packed_forward(int cell, const float[:, :, ::1] x, const float[::1] wp, const float[::1] bp,
                   const float[:, ::1] h0, c, float[:, :, ::1] out, int64_t out_offset,
                   acts, cstore, const int32_t[::1] nact, bint reverse,
                   int64_t r0, int64_t r1, int64_t p0, int64_t p1, Barrier barrier=None):
    """Run rows [r0, r1) and panels [p0, p1) of one layer-direction's recurrence (GIL released).

    ``x`` is (T, B, I); ``h0`` (B, H); ``c`` the LSTM's (B, >= panels*width)
    cell state (c0 in, final out; None for the RNN); ``out`` (T, B, >=
    offset + H) receives h_t; ``acts``/``cstore`` keep what backward needs
    (None in inference); ``nact[t]`` counts the running rows from r0.  With
    ``barrier``, every party calls with the same rows and its own panels.
    """
    cdef fl_seq s
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = h0.shape[1]
    cdef int64_t npan = fl_packed_panels(cell, H)
    cdef float[:, ::1] cv
    cdef float[:, :, ::1] av
    cdef float[:, :, ::1] sv
    cdef fl_barrier* bar = NULL
    cdef int64_t t
    if fl_packed_width() == 0:
        raise RuntimeError("this kernel variant has no packed kernels")
    if cell not in (CELL_LSTM, CELL_RNN):
        raise ValueError("unknown cell")
    if wp.shape[0] != fl_packed_size(cell, I, H) or bp.shape[0] != fl_packed_bias_size(cell, H):
        raise ValueError("packed weights do not match x and h0")
    if h0.shape[0] != B or out.shape[0] != T or out.shape[1] != B or out_offset < 0 \
            or out_offset + H > out.shape[2] or nact.shape[0] != T:
        raise ValueError("packed_forward: shapes do not align")
    if not (0 <= r0 <= r1 <= B and 0 <= p0 <= p1 <= npan):
        raise ValueError("packed_forward: bad row or panel range")
    s.cell = cell
    s.reverse = reverse
    s.T, s.B, s.NI, s.H = T, B, I, H
    s.x = &x[0, 0, 0]
    s.ldx = I
    s.wp = &wp[0]
    s.bp = &bp[0]
    s.h0 = &h0[0, 0]
    s.c = NULL
    s.ldc = 0
    s.out = &out[0, 0, out_offset]
    s.ldo = out.shape[2]
    s.acts = NULL
    s.cstore = NULL
    s.nact = &nact[0]
    if cell == CELL_LSTM:
        cv = c
        if cv.shape[0] != B or cv.shape[1] < npan * fl_packed_width():
            raise ValueError("c must be (B, >= panels * width)")
        s.c = &cv[0, 0]
        s.ldc = cv.shape[1]
    if acts is not None:
        av = acts
        if av.shape[0] != T or av.shape[1] != B or av.shape[2] != _CELL_GATES[cell] * H:
            raise ValueError("acts must be (T, B, G*H)")
        s.acts = &av[0, 0, 0]
    if cstore is not None:
        if cell != CELL_LSTM:
            raise ValueError("only the LSTM keeps cell states")
        sv = cstore
        if sv.shape[0] != T or sv.shape[1] != B or sv.shape[2] != H:
            raise ValueError("cstore must be (T, B, H)")
        s.cstore = &sv[0, 0, 0]
    for t in range(T):
        if nact[t] < 0 or nact[t] > r1 - r0 or (t > 0 and nact[t] > nact[t - 1]):
            raise ValueError("nact must count running rows, non-increasing in time")
    if barrier is not None:
        bar = barrier.ptr
    with nogil:
        fl_seq_run(&s, r0, r1, p0, p1, bar)


def packed_gemm(int cell, const float[:, ::1] x, const float[:, ::1] h, const float[::1] wp,
                const float[::1] bp):
    """The raw tile product [x | h] W_packed + b, in packed column order (for tests)."""
    cdef int64_t rows = x.shape[0], I = x.shape[1], H = h.shape[1]
    cdef int64_t npan = fl_packed_panels(cell, H)
    if fl_packed_width() == 0:
        raise RuntimeError("this kernel variant has no packed kernels")
    if h.shape[0] != rows or wp.shape[0] != fl_packed_size(cell, I, H):
        raise ValueError("packed_gemm: shapes do not align")
    out = np.empty((rows, npan * 4 * fl_packed_width()), dtype=np.float32)
    cdef float[:, ::1] ov = out
    if rows:
        with nogil:
            fl_packed_gemm(cell, rows, I, H, &x[0, 0], I, &h[0, 0], H, &wp[0], &bp[0],
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
