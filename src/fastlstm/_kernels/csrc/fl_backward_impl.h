/* Backpropagation through time on packed W_hh (see fl_backward.h): the
   cell-agnostic backward tile, written against fl_simd_<isa>.h and the
   forward's register tile; included by fl_packed_<isa>.c after
   fl_packed_impl.h.  A cell's backward step is instantiated by
   fl_cell_kernels.h around its gate-gradient row. */
#include "fl_backward.h"

static const float fl_zero_panel[FL_PW] __attribute__((aligned(64))) = {0};

int64_t fl_backward_panels(int64_t H) { return (H + FL_PW - 1) / FL_PW; }

/* Where step `step` of a backward over rows [r0, r1) is: the first row of
   its time t and of the step before t in the forward's running order (tp)
   in the layout; the end of the rows running at t (hi) and at tp (nprev:
   the others started at t from the initial state). */
typedef struct {
    int64_t base, pbase, hi, nprev;
} fl_bwhere;

FL_INLINE fl_bwhere fl_bwhere_of(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1) {
    fl_bwhere w;
    int64_t T = s->T, B = s->B;
    int64_t t = s->reverse ? step : T - 1 - step, tp = s->reverse ? t + 1 : t - 1;
    int64_t n = r0 + s->nact[t];
    w.hi = n < r1 ? n : r1;
    if (s->reverse) w.nprev = tp < T ? r0 + s->nact[tp] : r0;
    else w.nprev = t > 0 ? n : r0;
    w.base = s->toff ? s->toff[t] : t * B;
    w.pbase = tp < 0 || tp >= T ? 0 : s->toff ? s->toff[tp] : tp * B;
    return w;
}

/* acc = a rows W_hh for panel p when its first `live` vectors hold
   columns below H (the others are the zero padding of the last panel): the
   padding is neither loaded nor multiplied, and the live vectors' arithmetic
   is the same whatever `live` is. */
#define FL_BTILE_LIVE(n) \
    case n: fl_tile_acc(mr, ms, (1 << n) - 1, (1 << n) - 1, a, a, 0, K, panel, fl_zero_panel, \
                        acc); break;

/* out rows = a rows W_hh (add: out rows += a rows W_hh) for one tile of mr
   rows, panels [p0, p1) (each panel's arithmetic is the same whichever
   range it is in) */
FL_INLINE void fl_btile(int mr, int ms, int add, const float* const* a, int64_t K, int64_t H,
                        const float* wp, float* const* out, int64_t p0, int64_t p1) {
    V acc[FL_MR][FL_NV];
    for (int64_t p = p0; p < p1; p++) {
        const float* panel = wp + p * K * FL_PW;
        int64_t rest = H - p * FL_PW;
        int live = rest >= FL_PW ? FL_NV : (int)((rest + FL_VW - 1) / FL_VW);
        switch (live) {
            FL_BTILE_LIVE(1)
            FL_BTILE_LIVE(2)
            FL_BTILE_LIVE(3)
            default:
                fl_tile_acc(mr, ms, FL_ALL, FL_ALL, a, a, 0, K, panel, fl_zero_panel, acc);
        }
#pragma GCC unroll 8
        for (int i = 0; i < FL_MR; i++) {
            if (i >= mr) break;
#pragma GCC unroll 4
            for (int v = 0; v < FL_NV; v++) {
                int64_t j0 = p * FL_PW + v * FL_VW;
                if (j0 >= H) continue;
                V y = add ? v_add(acc[i][v], v_load_n(out[i] + j0, H - j0)) : acc[i][v];
                v_store_n(out[i] + j0, y, H - j0);
            }
        }
    }
}

#define FL_BTILE_CASE(m) \
    case m: { if (ms) fl_btile(m, 1, add, a, K, H, wp, out, p0, p1); \
              else fl_btile(m, 0, add, a, K, H, wp, out, p0, p1); } break;

static void fl_btile_rows(int mr, int ms, int add, const float* const* a, int64_t K, int64_t H,
                          const float* wp, float* const* out, int64_t p0, int64_t p1) {
    switch (mr) {
        FL_BTILE_CASE(1)
        FL_BTILE_CASE(2)
#if FL_MR > 2
        FL_BTILE_CASE(3)
#endif
#if FL_MR > 3
        FL_BTILE_CASE(4)
#endif
#if FL_MR > 4
        FL_BTILE_CASE(5)
#endif
#if FL_MR > 5
        FL_BTILE_CASE(6)
#endif
        default: break;
    }
}
