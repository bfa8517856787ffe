/* Adam / AdamW and gradient clipping over flat parameter, gradient and moment
 * buffers, rounding exactly as the NumPy whole-buffer update of
 * fastlstm.train.optim.Adam: every product, sum, square root and quotient is
 * rounded to the buffer's type on its own (no fused multiply-add), in the same
 * order, so the result is bit for bit the NumPy one.
 *
 * One pass per element: clip (g *= clip_scale), optionally remember the old
 * parameter and moments (the undo copy), weight decay (coupled: g + wd * p;
 * decoupled: p * (1 - lr * wd)), the moments, the step.  Returns 1 if every
 * updated parameter is finite, else 0.  Memory is the caller's.
 */
#ifndef FL_OPTIM_H
#define FL_OPTIM_H

#include <math.h>
#include <stdint.h>
#include <float.h>

#if defined(__clang__)
#define FL_NO_CONTRACT_BEGIN _Pragma("clang fp contract(off)")
#define FL_NO_CONTRACT_ATTR
#elif defined(__GNUC__)
#define FL_NO_CONTRACT_BEGIN
/* (the optimize attribute resets the -f options it does not name: name them) */
#define FL_NO_CONTRACT_ATTR \
    __attribute__((optimize("fp-contract=off", "no-math-errno", "no-trapping-math")))
#else
#define FL_NO_CONTRACT_BEGIN
#define FL_NO_CONTRACT_ATTR
#endif

typedef struct {
    double clip_scale;  /* multiply the gradients by this if do_clip */
    double wd;          /* coupled weight decay (0: none) */
    double decay;       /* decoupled: p *= decay (if decoupled) */
    double b1, omb1;    /* beta_1, 1 - beta_1 */
    double b2, omb2;    /* beta_2, 1 - beta_2 */
    double bc2_sqrt;    /* sqrt(1 - beta_2 ** t) */
    double eps;
    double step_size;   /* lr / (1 - beta_1 ** t) */
    int do_clip, decoupled;
} fl_adam_args;

/* Branch-free, so that it vectorizes: multiplying by a clip scale of 1 and
 * selecting the decayed values leave every bit as the skipped operation would. */
#define FL_ADAM_LOOP(T, SQRT, SAVE)                                              \
    for (j = 0; j < n; j++) {                                                    \
        T gj = g[j] * cs, pj = p[j], mj = m[j], vj = v[j], d, t1, t2;            \
        g[j] = gj;                                                               \
        SAVE                                                                     \
        t1 = pj * dec;                                                           \
        pj = decoupled ? t1 : pj;                                                \
        t1 = pj * wd;                                                            \
        t1 = t1 + gj;                                                            \
        gj = coupled ? t1 : gj;                                                  \
        t1 = mj * b1; t2 = gj * omb1; mj = t1 + t2;                              \
        t1 = vj * b2; t2 = gj * gj; t2 = t2 * omb2; vj = t1 + t2;                \
        d = SQRT(vj);                                                            \
        d = d / bc2;                                                             \
        d = d + eps;                                                             \
        d = mj / d;                                                              \
        d = d * st;                                                              \
        pj = pj - d;                                                             \
        p[j] = pj; m[j] = mj; v[j] = vj;                                         \
        t1 = pj - pj;                                                            \
        bad |= !(t1 == 0);                                                       \
    }

#define FL_ADAM_BODY(T, SQRT)                                                    \
    FL_NO_CONTRACT_BEGIN                                                         \
    const T cs = a->do_clip ? (T)a->clip_scale : (T)1, wd = (T)a->wd;            \
    const T dec = (T)a->decay;                                                   \
    const T b1 = (T)a->b1, omb1 = (T)a->omb1, b2 = (T)a->b2, omb2 = (T)a->omb2;  \
    const T bc2 = (T)a->bc2_sqrt, eps = (T)a->eps, st = (T)a->step_size;         \
    const int coupled = !a->decoupled && a->wd != 0.0;                           \
    const int decoupled = a->decoupled && a->wd != 0.0;                          \
    int bad = 0;                                                                 \
    int64_t j;                                                                   \
    if (save_p) {                                                                \
        FL_ADAM_LOOP(T, SQRT, save_p[j] = pj; save_m[j] = mj; save_v[j] = vj;)   \
    } else {                                                                     \
        FL_ADAM_LOOP(T, SQRT, )                                                  \
    }                                                                            \
    return !bad;

static FL_NO_CONTRACT_ATTR int fl_adam_f32(float* restrict p, float* restrict g,
        float* restrict m, float* restrict v, int64_t n, const fl_adam_args* a,
        float* restrict save_p, float* restrict save_m, float* restrict save_v) {
    FL_ADAM_BODY(float, sqrtf)
}

static FL_NO_CONTRACT_ATTR int fl_adam_f64(double* restrict p, double* restrict g,
        double* restrict m, double* restrict v, int64_t n, const fl_adam_args* a,
        double* restrict save_p, double* restrict save_m, double* restrict save_v) {
    FL_ADAM_BODY(double, sqrt)
}

#endif
