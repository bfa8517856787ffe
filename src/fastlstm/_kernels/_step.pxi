# Streaming: one time step of a unidirectional stack, for any batch, on weights
# the layer prepares once per parameter version (fastlstm.nn.step): packed for
# the SIMD kernels, or the live and derived arrays for the BLAS kernels.  Each
# path runs the arithmetic the layer ran for a step before steppers were cached
# (the packed kernels and the RNN's and GRU's BLAS kernels: their forward over
# one step; the LSTM's BLAS path: _step in _lstm.pxi), so results are the same
# bits.  Nothing a step writes is shared: the scratch is each call's own (on
# the stack when small), and any number of threads may step one stepper on
# states of their own.

cdef enum:
    K_PACKED = 0
    K_LSTM_BLAS = 1
    K_RNN_BLAS = 2
    K_GRU_BLAS = 3

from libc.stdint cimport uint32_t, uint64_t

STEP_PACKED = K_PACKED
STEP_LSTM_BLAS = K_LSTM_BLAS
STEP_RNN_BLAS = K_RNN_BLAS
STEP_GRU_BLAS = K_GRU_BLAS
_STEP_KINDS = {"packed": K_PACKED, "lstm": K_LSTM_BLAS, "rnn": K_RNN_BLAS, "gru": K_GRU_BLAS}

# bytes of per-call scratch kept on the stack (beyond that, malloc)
cdef enum:
    STEP_STACK_BYTES = 16384


cdef inline bint _step_array(object a, int ndim, int typenum):
    """A C-contiguous, aligned ndarray (exactly) of ``ndim`` dimensions and ``typenum``."""
    return (cnp.PyArray_CheckExact(a) and cnp.PyArray_NDIM(<cnp.ndarray> a) == ndim
            and cnp.PyArray_TYPE(<cnp.ndarray> a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray> a))


cdef inline bint _step_state_ok(object a, int typenum, int64_t L, int64_t B, int64_t H,
                                bint out=False):
    """A state array (exactly an ndarray), or with ``out`` any writable ndarray."""
    cdef cnp.ndarray arr
    if out:
        arr = <cnp.ndarray> a
        if not (cnp.PyArray_NDIM(arr) == 3 and cnp.PyArray_TYPE(arr) == typenum
                and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
                and cnp.PyArray_ISWRITEABLE(arr)):
            return False
    elif not _step_array(a, 3, typenum):
        return False
    arr = <cnp.ndarray> a
    return arr.shape[0] == L and arr.shape[1] == B and arr.shape[2] == H


cdef inline bint _step_overlap(const char* a, size_t na, const char* b,
                               size_t nb) noexcept nogil:
    return a < b + nb and b < a + na


cdef bint _step_finite(const void* a, Py_ssize_t n, bint dbl) noexcept nogil:
    # no entry with an all-ones exponent (NaN or infinity): an integer OR over
    # the bits, which the compiler vectorizes (a float sum in order it cannot)
    cdef const uint32_t* f = <const uint32_t*> a
    cdef const uint64_t* d = <const uint64_t*> a
    cdef uint32_t acc32 = 0
    cdef uint64_t acc64 = 0
    cdef Py_ssize_t j
    if dbl:
        for j in range(n):
            acc64 |= (d[j] & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL
        return acc64 == 0
    for j in range(n):
        acc32 |= (f[j] & 0x7f800000U) == 0x7f800000U
    return acc32 == 0


cdef void _step_hidden_blas(int kind, int64_t L, int64_t B, int64_t I, int64_t H, int block,
                            void** p, const floating* x, const floating* hi, floating* ho,
                            char* scratch) noexcept nogil:
    # The RNN's and GRU's forward over one step, layer by layer, one shard:
    # G = bias_in + x W_ih^T (the input projection), then the cell's recurrence
    # kernel on h (h_in copied to h_out, updated there).
    cdef int64_t G = (3 if kind == K_GRU_BLAS else 1) * H
    cdef floating* gates = <floating*> scratch
    cdef floating* hg = gates + B * G
    cdef floating* hout = hg + B * G
    cdef const floating* inp = x
    cdef int64_t n_in = I, l, r
    cdef int32_t nact[1]
    cdef int blk = block if B <= 2 * block else 0  # as the forward's _step_block
    cdef floating* h
    nact[0] = <int32_t> B
    for l in range(L):
        h = ho + l * B * H
        if h != hi + l * B * H:
            memcpy(h, hi + l * B * H, <size_t> (B * H) * sizeof(floating))
        for r in range(B):
            memcpy(gates + r * G, p[4 * l + 2], <size_t> G * sizeof(floating))
        gemm(False, True, <int> B, <int> G, <int> n_in, <floating> 1, inp, <int> n_in,
             <const floating*> p[4 * l], <int> n_in, <floating> 1, gates, <int> G)
        if kind == K_GRU_BLAS:
            _gru_forward_shard(1, B, <int> H, False, blk, gates, <const floating*> p[4 * l + 1],
                               <const floating*> p[4 * l + 3], h, hout, H, <floating*> NULL,
                               hg, 0, <int> B, nact)
            memcpy(h, hout, <size_t> (B * H) * sizeof(floating))
        else:
            _rnn_forward_shard(1, B, <int> H, False, blk, gates, <const floating*> p[4 * l + 1],
                               h, h, H, 0, <int> B, nact)
        inp = h
        n_in = H


cdef class Stepper:
    """One time step of a unidirectional stack, for any batch.

    ``kind`` is one of ``STEP_PACKED`` (the packed SIMD kernels, float32),
    ``STEP_LSTM_BLAS``, ``STEP_RNN_BLAS``, ``STEP_GRU_BLAS``; ``arrays`` holds
    four arrays (or None) per layer: packed ``(wp, bp, None, None)``; LSTM
    ``(W_ih, W_hh, b_ih, b_hh)`` (live, read at every step); RNN and GRU
    ``(W_ih, W_hh^T, bias_in, b_hn or None)``, ``bias_in`` the projection's
    bias with the folded blocks of ``b_hh``.  The stepper keeps references
    to them; the caller rebuilds it when the parameters change.
    ``plain_rows`` (BLAS RNN and GRU): the largest batch whose forward runs as
    one task; :meth:`run` takes larger ones only when told they do.
    """

    cdef readonly int kind
    cdef int cell, typenum
    cdef bint dbl, lstm
    cdef readonly int64_t num_layers, input_size, hidden_size, plain_rows
    cdef readonly object version
    cdef readonly object dtype
    cdef int block
    cdef int64_t ldc, npan, G
    cdef list _keep
    cdef void** _p

    def __cinit__(self, int kind, int cell, list arrays, int64_t input_size, int64_t hidden_size,
                  dtype, version, int block=0, int64_t plain_rows=0):
        cdef int64_t l, j, n_in
        self.kind = kind
        self.cell = cell
        self.dtype = np.dtype(dtype)
        self.dbl = self.dtype == np.float64
        self.typenum = cnp.NPY_FLOAT64 if self.dbl else cnp.NPY_FLOAT32
        self.lstm = kind == K_LSTM_BLAS or (kind == K_PACKED and cell == _CELL_WITH_C)
        self.num_layers = len(arrays) // 4
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.version = version
        self.block = max(0, block)
        self.plain_rows = plain_rows
        if kind not in (K_PACKED, K_LSTM_BLAS, K_RNN_BLAS, K_GRU_BLAS):
            raise ValueError("unknown stepper kind")
        if self.num_layers < 1 or len(arrays) != 4 * self.num_layers or input_size < 1 \
                or hidden_size < 1:
            raise ValueError("a stepper needs four arrays per layer and positive sizes")
        if kind == K_PACKED:
            if fl_packed_width() == 0:
                raise RuntimeError("this kernel variant has no packed kernels")
            if self.dbl:
                raise ValueError("the packed kernels step float32 layers")
            _check_cell(cell)
            self.npan = fl_packed_panels(cell, hidden_size)
            self.ldc = self.npan * fl_packed_width()
        self.G = {K_LSTM_BLAS: 4, K_RNN_BLAS: 1, K_GRU_BLAS: 3}.get(kind, 0) * hidden_size
        self._keep = list(arrays)
        for l in range(self.num_layers):
            n_in = input_size if l == 0 else hidden_size
            for j in range(4):
                a = self._keep[4 * l + j]
                if a is None:
                    if kind == K_PACKED and j >= 2 or kind == K_RNN_BLAS and j == 3:
                        continue
                    raise ValueError("a stepper array is missing")
                if not (cnp.PyArray_Check(a) and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a)
                        and cnp.PyArray_TYPE(<cnp.ndarray> a) == self.typenum):
                    raise ValueError("stepper arrays must be C-contiguous, of the layer's dtype")
                if kind == K_PACKED:
                    want = ((fl_packed_size(cell, n_in, hidden_size),),
                            (fl_packed_bias_size(cell, hidden_size),))[j]
                elif kind == K_LSTM_BLAS:
                    want = ((self.G, n_in), (self.G, hidden_size), (self.G,), (self.G,))[j]
                else:
                    want = ((self.G, n_in), (hidden_size, self.G), (self.G,), (hidden_size,))[j]
                if a.shape != want:
                    raise ValueError(f"stepper array {j} of layer {l} has shape {a.shape}, "
                                     f"expected {want}")
        self._p = <void**> PyMem_Malloc(4 * self.num_layers * sizeof(void*))
        if self._p == NULL:
            raise MemoryError()
        for j in range(4 * self.num_layers):
            a = self._keep[j]
            self._p[j] = NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray> a)

    def __dealloc__(self):
        PyMem_Free(self._p)

    def __reduce__(self):
        raise TypeError("a Stepper holds raw pointers and is not pickled; the layer "
                        "rebuilds it on its next step()")

    cdef object _outputs(self, object out, int64_t B, object x, object h_in, object c_in):
        """The state arrays a step writes: fresh ones, or ``out`` once checked."""
        cdef int64_t L = self.num_layers, H = self.hidden_size
        cdef cnp.npy_intp dims[3]
        cdef size_t nbytes = <size_t> (L * B * H) * (8 if self.dbl else 4)
        cdef list arrays
        cdef Py_ssize_t k, m
        if out is None:
            dims[0] = L
            dims[1] = B
            dims[2] = H
            if self.lstm:
                return (cnp.PyArray_EMPTY(3, dims, self.typenum, 0),
                        cnp.PyArray_EMPTY(3, dims, self.typenum, 0))
            return cnp.PyArray_EMPTY(3, dims, self.typenum, 0)
        if self.lstm:
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError(f"out must be a tuple (h, c) of two arrays of shape {(L, B, H)}, "
                                f"as step() returns the state; got {type(out).__name__}")
            arrays = list(out)
        else:
            arrays = [out]
        for a in arrays:
            if not (cnp.PyArray_Check(a) and _step_state_ok(a, self.typenum, L, B, H, True)):
                if cnp.PyArray_Check(a):
                    got = (f"an array of dtype {a.dtype} and shape {a.shape}"
                           + ("" if a.flags.c_contiguous else ", not C-contiguous")
                           + ("" if a.flags.writeable else ", read-only"))
                else:
                    got = type(a).__name__
                raise ValueError(f"out must hold C-contiguous, writable {self.dtype} arrays of "
                                 f"shape {(L, B, H)} (num_layers, batch, hidden_size), as step() "
                                 f"returns the state; got {got}")
        # each output is memory of its own, or exactly its own input state (a step in place)
        cdef const char* px = <const char*> cnp.PyArray_DATA(<cnp.ndarray> x)
        cdef size_t nx = <size_t> cnp.PyArray_NBYTES(<cnp.ndarray> x)
        cdef const char* pin[2]
        cdef const char* pout[2]
        cdef int n_arr = 2 if self.lstm else 1
        pin[0] = <const char*> cnp.PyArray_DATA(<cnp.ndarray> h_in)
        pin[1] = <const char*> cnp.PyArray_DATA(<cnp.ndarray> c_in) if self.lstm else NULL
        for k in range(n_arr):
            pout[k] = <const char*> cnp.PyArray_DATA(<cnp.ndarray> arrays[k])
        for k in range(n_arr):
            if _step_overlap(pout[k], nbytes, px, nx):
                raise ValueError("out must not share memory with x_t")
            for m in range(n_arr):
                if m != k or pout[k] != pin[m]:
                    if _step_overlap(pout[k], nbytes, pin[m], nbytes):
                        raise ValueError("out may be the state passed in (updated in place), "
                                         "but must not otherwise share memory with it")
            if k == 1 and _step_overlap(pout[1], nbytes, pout[0], nbytes):
                raise ValueError("out's h and c must not share memory")
        if self.lstm:
            return out if type(out) is tuple else tuple(arrays)
        return arrays[0]

    def run(self, x, state, out=None, bint planned=False):
        """One step of every layer: ``(h_t, new_state)``, or None.

        ``x`` (B, I) and the state (``(h, c)`` for the LSTM, ``h`` otherwise,
        each (L, B, H); None for zeros) are taken as they are when they are
        C-contiguous arrays of the stepper's dtype and shapes; otherwise, or
        for a batch over ``plain_rows`` unless ``planned``, this returns None
        and the caller converts and checks them.  ``out`` receives the new
        state (fresh arrays when None); it may be the state passed in.
        Raises ValueError for NaN or infinity in x or the state, or a bad out.
        """
        cdef int64_t L = self.num_layers, H = self.hidden_size, I = self.input_size
        cdef int64_t B, l, r, ldc = self.ldc, npan = self.npan, n_state
        cdef int status = 0
        cdef cnp.npy_intp dims[3]
        cdef fl_seq s
        if not _step_array(x, 2, self.typenum):
            return None
        B = (<cnp.ndarray> x).shape[0]
        if B < 1 or (<cnp.ndarray> x).shape[1] != I:
            return None
        if B > 2 ** 31 - 1:
            raise ValueError(f"step: a batch of {B} rows is too large (at most 2**31 - 1)")
        if B > self.plain_rows and not planned and (
                self.kind == K_RNN_BLAS or self.kind == K_GRU_BLAS):
            return None
        if state is None:
            dims[0] = L
            dims[1] = B
            dims[2] = H
            h_in = cnp.PyArray_ZEROS(3, dims, self.typenum, 0)
            c_in = cnp.PyArray_ZEROS(3, dims, self.typenum, 0) if self.lstm else None
        elif self.lstm:
            if type(state) is not tuple or len(<tuple> state) != 2:
                return None
            h_in = (<tuple> state)[0]
            c_in = (<tuple> state)[1]
            if not (_step_state_ok(h_in, self.typenum, L, B, H)
                    and _step_state_ok(c_in, self.typenum, L, B, H)):
                return None
        else:
            h_in = state
            c_in = None
            if not _step_state_ok(h_in, self.typenum, L, B, H):
                return None
        new = self._outputs(out, B, x, h_in, c_in)
        h_out = new[0] if self.lstm else new
        c_out = new[1] if self.lstm else None
        n_state = L * B * H
        cdef size_t isz = 8 if self.dbl else 4
        cdef const char* xp = <const char*> cnp.PyArray_DATA(<cnp.ndarray> x)
        cdef const char* hi = <const char*> cnp.PyArray_DATA(<cnp.ndarray> h_in)
        cdef char* ho = <char*> cnp.PyArray_DATA(<cnp.ndarray> h_out)
        cdef const char* ci = NULL
        cdef char* co = NULL
        if self.lstm:
            ci = <const char*> cnp.PyArray_DATA(<cnp.ndarray> c_in)
            co = <char*> cnp.PyArray_DATA(<cnp.ndarray> c_out)
        # per-call scratch: packed, the padded cell state and a copy of h_in
        # for a step in place; BLAS RNN/GRU, gates, recurrent products, output
        cdef size_t need = 0
        cdef bint pad = self.kind == K_PACKED and self.lstm and ldc != H
        if self.kind == K_PACKED:
            need = (<size_t> (B * ldc) * 4 if pad else 0) + (<size_t> (B * H) * 4 if ho == hi
                                                             else 0)
        elif self.kind != K_LSTM_BLAS:
            need = <size_t> (2 * B * self.G + B * H) * isz
        cdef char stack_buf[STEP_STACK_BYTES]
        cdef void* heap = NULL
        cdef char* scratch = <char*> ((<size_t> stack_buf + 63) & ~(<size_t> 63))
        if need + 64 > STEP_STACK_BYTES:
            heap = malloc(need + 64)
            if heap == NULL:
                raise MemoryError(f"step: cannot allocate {need} bytes of scratch for {B} rows")
            scratch = <char*> ((<size_t> heap + 63) & ~(<size_t> 63))
        cdef float* cb = <float*> scratch
        cdef float* hcopy = <float*> (scratch + ((<size_t> (B * ldc) * 4) if pad else 0))
        cdef int32_t nact[1]
        cdef float* hof = <float*> ho
        cdef float* cof = <float*> co
        cdef const float* hif = <const float*> hi
        cdef const float* cif = <const float*> ci
        with nogil:
            if not _step_finite(xp, B * I, self.dbl):
                status = 1
            elif not (_step_finite(hi, n_state, self.dbl)
                      and (ci == NULL or _step_finite(ci, n_state, self.dbl))):
                status = 2
            elif self.kind == K_PACKED:
                nact[0] = <int32_t> B
                s.cell = self.cell
                s.reverse = 0
                # a batch of a whole tile or more: every row the same arithmetic, as in forward
                s.exact = B >= fl_packed_tile_rows()
                s.T = 1
                s.B = B
                s.H = H
                s.c = NULL
                s.ldc = 0
                s.ldo = H
                s.ots = 0
                s.xts = 0
                s.acts = NULL
                s.aux = NULL
                s.nact = nact
                s.toff = NULL
                if pad:
                    # the padding lanes hold zeros, never stale values
                    memset(cb, 0, <size_t> (B * ldc) * sizeof(float))
                for l in range(L):
                    s.NI = I if l == 0 else H
                    if l == 0:
                        s.x = <const float*> xp
                    else:
                        s.x = hof + (l - 1) * B * H
                    s.ldx = s.NI
                    s.wp = <const float*> self._p[4 * l]
                    s.bp = <const float*> self._p[4 * l + 1]
                    s.h0 = hif + l * B * H
                    if hof == hif:  # in place: h_{t-1} must stay readable while h_t is written
                        memcpy(hcopy, hif + l * B * H, <size_t> (B * H) * sizeof(float))
                        s.h0 = hcopy
                    s.out = hof + l * B * H
                    if not self.lstm:
                        fl_seq_run(&s, 0, B, 0, npan, NULL)
                    elif not pad:
                        if cof != cif:
                            memcpy(cof + l * B * H, cif + l * B * H,
                                   <size_t> (B * H) * sizeof(float))
                        s.c = cof + l * B * H
                        s.ldc = ldc
                        fl_seq_run(&s, 0, B, 0, npan, NULL)
                    else:
                        for r in range(B):
                            memcpy(cb + r * ldc, cif + (l * B + r) * H, H * sizeof(float))
                        s.c = cb
                        s.ldc = ldc
                        fl_seq_run(&s, 0, B, 0, npan, NULL)
                        for r in range(B):
                            memcpy(cof + (l * B + r) * H, cb + r * ldc, H * sizeof(float))
            elif self.kind == K_LSTM_BLAS:
                if ho != hi:
                    memcpy(ho, hi, <size_t> n_state * isz)
                if co != ci:
                    memcpy(co, ci, <size_t> n_state * isz)
                if self.dbl:
                    if _step(L, B, I, H, self._p, <const double*> xp, <double*> ho,
                             <double*> co) != 0:
                        status = 3
                elif _step(L, B, I, H, self._p, <const float*> xp, <float*> ho,
                           <float*> co) != 0:
                    status = 3
            elif self.dbl:
                _step_hidden_blas(self.kind, L, B, I, H, self.block, self._p,
                                  <const double*> xp, <const double*> hi, <double*> ho, scratch)
            else:
                _step_hidden_blas(self.kind, L, B, I, H, self.block, self._p,
                                  <const float*> xp, <const float*> hi, <float*> ho, scratch)
            free(heap)
        if status == 1:
            raise ValueError(f"x_t contains NaN or infinity (or values too large for "
                             f"{self.dtype})")
        if status == 2:
            raise ValueError(f"state contains NaN or infinity (or values too large for "
                             f"{self.dtype})")
        if status != 0:
            raise MemoryError(f"step: cannot allocate {B * self.G} gate values")
        return _last_layer(h_out, L, B, H, self.typenum), new


cdef inline object _last_layer(object h, int64_t L, int64_t B, int64_t H, int typenum):
    # h[L - 1] of a C-contiguous (L, B, H) state: a (B, H) view made in C
    # (the same array numpy's indexing makes, at a fraction of its cost)
    cdef cnp.npy_intp dims[2]
    dims[0] = B
    dims[1] = H
    cdef char* data = <char*> cnp.PyArray_DATA(<cnp.ndarray> h)
    cdef size_t isz = cnp.PyArray_ITEMSIZE(<cnp.ndarray> h)
    view = cnp.PyArray_SimpleNewFromData(2, dims, typenum, data + (L - 1) * B * H * isz)
    cnp.set_array_base(<cnp.ndarray> view, h)
    return view
