/* The LSTM on the packed kernels (PyTorch's gate order i, f, g, o): panel p,
   vector v, lane l holds gate v of hidden unit p*VW + l, so the gate math
   is lane-wise on the accumulators.  acts keeps [i, f, g, o], aux [c_t,
   tanh(c_t)]: the backward reads tanh(c_t) instead of computing it again. */

static int64_t fl_lstm_column(int64_t H, int64_t p, int64_t v, int64_t l, int* parts,
                              int* bias) {
    int64_t unit = p * FL_VW + l;
    *parts = FL_PART_X | FL_PART_H;
    *bias = FL_BIAS_IH | FL_BIAS_HH;
    return unit < H ? v * H + unit : -1;
}

FL_INLINE void fl_lstm_epilogue(const fl_seq* s, int mr, int64_t t, int64_t r, int64_t p,
                                V acc[FL_MR][FL_NV], const float* const* ha) {
    int64_t H = s->H, j0 = p * FL_VW, nv = H - j0 < FL_VW ? H - j0 : FL_VW;
    (void)ha;
#pragma GCC unroll 8
    for (int i = 0; i < FL_MR; i++) {
        if (i >= mr) break;
        int64_t row = fl_trow(s, t, r + i);
        /* i, f, o = sigmoid(G_i, G_f, G_o); g = tanh(G_g) */
        V ig = v_sigmoid(acc[i][0]), fg = v_sigmoid(acc[i][1]);
        V gg = v_tanh(acc[i][2]), og = v_sigmoid(acc[i][3]);
        /* c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t) */
        float* cp = s->c + (r + i) * s->ldc + j0;
        V cn = v_fmadd(fg, v_load(cp), v_mul(ig, gg));
        V tc = v_tanh(cn);
        v_store(cp, cn);
        v_store_n(fl_orow(s, t, r + i) + j0, v_mul(og, tc), nv);
        if (s->acts) {
            float* a = s->acts + row * 4 * H + j0;
            v_store_n(a, ig, nv);
            v_store_n(a + H, fg, nv);
            v_store_n(a + 2 * H, gg, nv);
            v_store_n(a + 3 * H, og, nv);
        }
        if (s->aux) {
            v_store_n(s->aux + row * 2 * H + j0, cn, nv);
            v_store_n(s->aux + row * 2 * H + H + j0, tc, nv);
        }
    }
}

/* dG of one LSTM row, in place over its activations; dh, dc of the row
   updated (dc to dL/dc_{t-1}; dh is read here and overwritten by the tile).
   aux is [c_t, tanh(c_t)], auxp c_{t-1} (its first H). */
FL_INLINE void fl_lstm_dg_row(int64_t H, float* g, float* aux, const float* auxp,
                              const float* dy, float* dh, float* dc) {
    const V one = v_set1(1.0f);
    for (int64_t j = 0; j < H; j += FL_VW) {
        int64_t n = H - j;
        V i = v_load_n(g + j, n), f = v_load_n(g + H + j, n);
        V gg = v_load_n(g + 2 * H + j, n), o = v_load_n(g + 3 * H + j, n);
        V tc = v_load_n(aux + H + j, n);
        /* dh = dy_t + dh_next;  dc = dc_next + dh * o * (1 - tanh(c)^2) */
        V dhv = v_add(v_load_n(dh + j, n), v_load_n(dy + j, n));
        V dcv = v_fmadd(v_mul(dhv, o), v_fnmadd(tc, tc, one), v_load_n(dc + j, n));
        v_store_n(dc + j, v_mul(dcv, f), n);
        /* dG = [dc*g*i*(1-i), dc*c_{t-1}*f*(1-f), dc*i*(1-g^2), dh*tanh(c)*o*(1-o)] */
        v_store_n(g + j, v_mul(v_mul(dcv, gg), v_fnmadd(i, i, i)), n);
        v_store_n(g + H + j, v_mul(v_mul(dcv, v_load_n(auxp + j, n)), v_fnmadd(f, f, f)), n);
        v_store_n(g + 2 * H + j, v_mul(v_mul(dcv, i), v_fnmadd(gg, gg, one)), n);
        v_store_n(g + 3 * H + j, v_mul(v_mul(dhv, tc), v_fnmadd(o, o, o)), n);
    }
}

#define FL_CELL lstm
#define FL_CELL_GATES 4
#define FL_CELL_STATES 2
#define FL_CELL_AUX 2
#define FL_CELL_AUX_PREV 1
#define FL_CELL_DGH_AUX 0
#define FL_CELL_VECTORS FL_NV
#include "fl_cell_kernels.h"
