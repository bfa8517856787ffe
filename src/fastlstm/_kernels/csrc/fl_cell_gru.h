/* The GRU on the packed kernels (PyTorch's nn.GRU, gate order r, z, n, the
   reset gate applied after the recurrent product; b_hn never folded):
   panel p holds, for hidden units p*VW + l, the vectors
     r    rows W_ir | W_hr, bias b_ir + b_hr
     z    rows W_iz | W_hz, bias b_iz + b_hz
     n_x  rows W_in | 0,    bias b_in
     n_h  rows 0 | W_hn,    bias b_hn
   so the tile leaves r, z, n_x and n_h of VW units side by side.  acts
   keeps [r, z, n]; aux [n_h, h_{t-1}, -], whose backward writes over it the
   recurrent side's gate gradients dG_h = [da_r, da_z, r * da_n]. */

static int64_t fl_gru_column(int64_t H, int64_t p, int64_t v, int64_t l, int* parts,
                             int* bias) {
    int64_t unit = p * FL_VW + l;
    static const int vparts[FL_NV] = {FL_PART_X | FL_PART_H, FL_PART_X | FL_PART_H,
                                      FL_PART_X, FL_PART_H};
    static const int vbias[FL_NV] = {FL_BIAS_IH | FL_BIAS_HH, FL_BIAS_IH | FL_BIAS_HH,
                                     FL_BIAS_IH, FL_BIAS_HH};
    *parts = vparts[v];
    *bias = vbias[v];
    return unit < H ? (v < 2 ? v : 2) * H + unit : -1;
}

FL_INLINE void fl_gru_epilogue(const fl_seq* s, int mr, int64_t t, int64_t r, int64_t p,
                               V acc[FL_MR][FL_NV], const float* const* ha) {
    int64_t H = s->H, j0 = p * FL_VW, nv = H - j0 < FL_VW ? H - j0 : FL_VW;
#pragma GCC unroll 8
    for (int i = 0; i < FL_MR; i++) {
        if (i >= mr) break;
        int64_t row = fl_trow(s, t, r + i);
        /* r = sigmoid(G_r), z = sigmoid(G_z), n = tanh(n_x + r * n_h) */
        V rg = v_sigmoid(acc[i][0]), zg = v_sigmoid(acc[i][1]);
        V ng = v_tanh(v_fmadd(rg, acc[i][3], acc[i][2]));
        /* h' = (1 - z) * n + z * h = n + z * (h - n) */
        V hp = v_load_n(ha[i] + j0, nv);
        v_store_n(fl_orow(s, t, r + i) + j0, v_fmadd(zg, v_sub(hp, ng), ng), nv);
        if (s->acts) {
            float* a = s->acts + row * 3 * H + j0;
            v_store_n(a, rg, nv);
            v_store_n(a + H, zg, nv);
            v_store_n(a + 2 * H, ng, nv);
            float* x = s->aux + row * 3 * H + j0;
            v_store_n(x, acc[i][3], nv);
            v_store_n(x + H, hp, nv);
        }
    }
}

/* Gate gradients of one GRU row: g holds [r, z, n] in, [da_r, da_z, da_n]
   out (the input side's); aux [n_h, h_{t-1}, -] in, dG_h out; dh the
   gradient carried into h' in, the direct path dh' z to h_{t-1} out (the
   tile adds dG_h W_hh). */
FL_INLINE void fl_gru_dg_row(int64_t H, float* g, float* aux, const float* auxp,
                             const float* dy, float* dh, float* dc) {
    const V one = v_set1(1.0f);
    (void)auxp; (void)dc;
    for (int64_t j = 0; j < H; j += FL_VW) {
        int64_t n = H - j;
        V r = v_load_n(g + j, n), z = v_load_n(g + H + j, n), nn = v_load_n(g + 2 * H + j, n);
        V nh = v_load_n(aux + j, n), hp = v_load_n(aux + H + j, n);
        V dhv = v_add(v_load_n(dh + j, n), v_load_n(dy + j, n));
        /* dn = dh' (1 - z), dz = dh' (h - n), da_n = dn (1 - n^2), dr = da_n n_h */
        V dan = v_mul(v_mul(dhv, v_sub(one, z)), v_fnmadd(nn, nn, one));
        V daz = v_mul(v_mul(dhv, v_sub(hp, nn)), v_fnmadd(z, z, z));
        V dar = v_mul(v_mul(dan, nh), v_fnmadd(r, r, r));
        v_store_n(g + j, dar, n);
        v_store_n(g + H + j, daz, n);
        v_store_n(g + 2 * H + j, dan, n);
        v_store_n(aux + j, dar, n);
        v_store_n(aux + H + j, daz, n);
        v_store_n(aux + 2 * H + j, v_mul(dan, r), n);
        v_store_n(dh + j, v_mul(dhv, z), n);
    }
}

#define FL_CELL gru
#define FL_CELL_GATES 3
#define FL_CELL_STATES 1
#define FL_CELL_AUX 3
#define FL_CELL_AUX_PREV 0
#define FL_CELL_DGH_AUX 1
#define FL_CELL_VECTORS FL_NV
#define FL_CELL_XMASK 0x7          /* r, z, n_x: n_h is zero over x */
#define FL_CELL_HMASK 0xB          /* r, z, n_h: n_x is zero over h */
#include "fl_cell_kernels.h"
