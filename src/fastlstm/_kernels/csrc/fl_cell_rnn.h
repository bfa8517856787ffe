/* The tanh RNN on the packed kernels: panel p, vector v, lane l holds hidden
   unit (4p + v)*VW + l (one gate: four vectors of units a panel).  acts
   keeps h_t; no aux. */

static int64_t fl_rnn_column(int64_t H, int64_t p, int64_t v, int64_t l, int* parts,
                             int* bias) {
    int64_t unit = (p * FL_NV + v) * FL_VW + l;
    *parts = FL_PART_X | FL_PART_H;
    *bias = FL_BIAS_IH | FL_BIAS_HH;
    return unit < H ? unit : -1;
}

FL_INLINE void fl_rnn_epilogue(const fl_seq* s, int mr, int64_t t, int64_t r, int64_t p,
                               V acc[FL_MR][FL_NV], const float* const* ha) {
    int64_t H = s->H;
    (void)ha;
#pragma GCC unroll 8
    for (int i = 0; i < FL_MR; i++) {
        if (i >= mr) break;
        int64_t row = fl_trow(s, t, r + i);
        for (int v = 0; v < FL_NV; v++) {
            /* h_t = tanh(G) */
            int64_t j0 = (p * FL_NV + v) * FL_VW;
            if (j0 >= H) break;
            int64_t nv = H - j0 < FL_VW ? H - j0 : FL_VW;
            V h = v_tanh(acc[i][v]);
            v_store_n(fl_orow(s, t, r + i) + j0, h, nv);
            if (s->acts) v_store_n(s->acts + row * H + j0, h, nv);
        }
    }
}

/* dG of one RNN row, in place over h_t: (dy_t + dh_next) * (1 - h_t^2) */
FL_INLINE void fl_rnn_dg_row(int64_t H, float* g, float* aux, const float* auxp,
                             const float* dy, float* dh, float* dc) {
    const V one = v_set1(1.0f);
    (void)aux; (void)auxp; (void)dc;
    for (int64_t j = 0; j < H; j += FL_VW) {
        int64_t n = H - j;
        V h = v_load_n(g + j, n);
        v_store_n(g + j, v_mul(v_add(v_load_n(dh + j, n), v_load_n(dy + j, n)),
                               v_fnmadd(h, h, one)), n);
    }
}

#define FL_CELL rnn
#define FL_CELL_GATES 1
#define FL_CELL_STATES 1
#define FL_CELL_AUX 0
#define FL_CELL_AUX_PREV 0
#define FL_CELL_DGH_AUX 0
#define FL_CELL_VECTORS 1
#include "fl_cell_kernels.h"
