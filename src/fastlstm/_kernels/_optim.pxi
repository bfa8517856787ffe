# Adam / AdamW and gradient clipping over flat buffers (csrc/fl_optim.h), GIL
# released, rounding exactly as the NumPy whole-buffer update in
# fastlstm.train.optim.  Included after _common.pxi.

from libc.math cimport pow as c_pow, sqrt as c_sqrt

cdef extern from "csrc/fl_optim.h":
    ctypedef struct fl_adam_args:
        double clip_scale, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, eps, step_size
        int do_clip, decoupled
    int fl_adam_f32(float* p, float* g, float* m, float* v, int64_t n, const fl_adam_args* a,
                    float* save_p, float* save_m, float* save_v) noexcept nogil
    int fl_adam_f64(double* p, double* g, double* m, double* v, int64_t n,
                    const fl_adam_args* a, double* save_p, double* save_m,
                    double* save_v) noexcept nogil


cdef fl_adam_args _adam_args(double lr, double b1, double b2, double eps, double wd,
                             bint decoupled, int64_t t, double clip_scale,
                             bint do_clip) noexcept nogil:
    # the constants as fastlstm.train.optim.Adam.step forms them (in double)
    cdef fl_adam_args a
    a.clip_scale = clip_scale
    a.do_clip = do_clip
    a.wd = wd
    a.decoupled = decoupled
    a.decay = 1.0 - lr * wd
    a.b1 = b1
    a.omb1 = 1.0 - b1
    a.b2 = b2
    a.omb2 = 1.0 - b2
    a.bc2_sqrt = c_sqrt(1.0 - c_pow(b2, <double> t))
    a.eps = eps
    a.step_size = lr / (1.0 - c_pow(b1, <double> t))
    return a


cdef int _adam_run(object p, object g, object m, object v, const fl_adam_args* a,
                   object save) except -1:
    # checks, then one GIL-free pass; returns 1 if the new parameters are finite
    cdef object dt = p.dtype
    cdef int64_t n = p.shape[0]
    cdef int ok
    cdef void* sp = NULL
    cdef void* sm = NULL
    cdef void* sv = NULL
    arrays = [p, g, m, v] + ([] if save is None else list(save))
    for arr in arrays:
        if (type(arr) is not np.ndarray or arr.ndim != 1 or arr.shape[0] != n
                or arr.dtype != dt or not arr.flags.c_contiguous or not arr.flags.writeable):
            raise ValueError("adam_update: the buffers must be writable, contiguous 1-d arrays "
                             "of one length and one dtype (float32 or float64)")
    if save is not None:
        sp = cnp.PyArray_DATA(<cnp.ndarray> save[0])
        sm = cnp.PyArray_DATA(<cnp.ndarray> save[1])
        sv = cnp.PyArray_DATA(<cnp.ndarray> save[2])
    cdef void* pp = cnp.PyArray_DATA(<cnp.ndarray> p)
    cdef void* gp = cnp.PyArray_DATA(<cnp.ndarray> g)
    cdef void* mp = cnp.PyArray_DATA(<cnp.ndarray> m)
    cdef void* vp = cnp.PyArray_DATA(<cnp.ndarray> v)
    if dt == np.float32:
        with nogil:
            ok = fl_adam_f32(<float*> pp, <float*> gp, <float*> mp, <float*> vp, n, a,
                             <float*> sp, <float*> sm, <float*> sv)
    elif dt == np.float64:
        with nogil:
            ok = fl_adam_f64(<double*> pp, <double*> gp, <double*> mp, <double*> vp, n, a,
                             <double*> sp, <double*> sm, <double*> sv)
    else:
        raise ValueError(f"adam_update: float32 or float64 buffers, got {dt}")
    return ok


def adam_update(p, g, m, v, double learning_rate, double beta_1, double beta_2,
                double epsilon, double weight_decay, bint decoupled, int64_t t,
                clip_scale=None, save=None):
    """One Adam (``decoupled``: AdamW) step ``t`` (1-based) on flat buffers, in place.

    ``clip_scale``: the gradients are first multiplied by it (and keep the
    product).  ``save``: three buffers that receive the old parameters and
    moments.  Returns True if the new parameters are all finite.
    """
    cdef fl_adam_args a
    if t < 1:
        raise ValueError("adam_update: t counts from 1")
    a = _adam_args(learning_rate, beta_1, beta_2, epsilon, weight_decay, decoupled, t,
                   0.0 if clip_scale is None else clip_scale, clip_scale is not None)
    return _adam_run(p, g, m, v, &a, save) == 1
