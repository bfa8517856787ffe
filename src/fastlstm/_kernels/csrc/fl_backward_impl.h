/* Backpropagation through time on packed W_hh (see fl_backward.h): the
   cell-agnostic backward tile, written against fl_simd_<isa>.h and the
   forward's register tile; included by fl_packed_<isa>.c after
   fl_packed_impl.h.  A cell's backward step is instantiated by
   fl_cell_kernels.h around its gate-gradient row. */
#include "fl_backward.h"

static const float fl_zero_panel[FL_PW] __attribute__((aligned(64))) = {0};

int64_t fl_backward_panels(int64_t H) { return (H + FL_PW - 1) / FL_PW; }

/* acc = a rows W_hh for panel p when its first `live` vectors hold
   columns below H (the others are the zero padding of the last panel): the
   padding is neither loaded nor multiplied, and the live vectors' arithmetic
   is the same whatever `live` is. */
#define FL_BTILE_LIVE(n) \
    case n: fl_tile_acc(mr, ms, (1 << n) - 1, (1 << n) - 1, a, a, 0, K, panel, fl_zero_panel, \
                        acc); break;

/* out rows = a rows W_hh (add: out rows += a rows W_hh) for one tile of mr
   rows, every panel */
FL_INLINE void fl_btile(int mr, int ms, int add, const float* const* a, int64_t K, int64_t H,
                        const float* wp, float* const* out) {
    V acc[FL_MR][FL_NV];
    int64_t np = fl_backward_panels(H);
    for (int64_t p = 0; p < np; p++) {
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
    case m: { if (ms) fl_btile(m, 1, add, a, K, H, wp, out); \
              else fl_btile(m, 0, add, a, K, H, wp, out); } break;

static void fl_btile_rows(int mr, int ms, int add, const float* const* a, int64_t K, int64_t H,
                          const float* wp, float* const* out) {
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
