/* Backpropagation through time on packed W_hh (see fl_backward.h), written
   against fl_simd_<isa>.h and the forward's register tile: included by
   fl_packed_<isa>.c after fl_packed_impl.h. */
#include "fl_backward.h"

static const float fl_zero_panel[FL_PW] __attribute__((aligned(64))) = {0};

static inline int64_t fl_cell_gates(int cell) { return cell == FL_CELL_LSTM ? 4 : 1; }

int64_t fl_backward_panels(int64_t H) { return (H + FL_PW - 1) / FL_PW; }

int64_t fl_backward_size(int cell, int64_t H) {
    return fl_backward_panels(H) * fl_cell_gates(cell) * H * FL_PW;
}

void fl_pack_backward(int cell, int64_t H, const float* w_hh, float* wp) {
    int64_t K = fl_cell_gates(cell) * H, np = fl_backward_panels(H), p, k, v, l;
    for (p = 0; p < np; p++) {
        float* panel = wp + p * K * FL_PW;
        for (k = 0; k < K; k++) {
            const float* src = w_hh + k * H;
            for (v = 0; v < FL_NV; v++) {
                float* dst = panel + fl_panel_offset(K, k, v);
                for (l = 0; l < FL_VW; l++) {
                    int64_t col = p * FL_PW + v * FL_VW + l;
                    dst[l] = col < H ? src[col] : 0.0f;
                }
            }
        }
    }
}

/* dG of one LSTM row, in place over its activations; dh, dc of the row
   updated (dc to dL/dc_{t-1}; dh is read here and overwritten by the tile). */
FL_INLINE void fl_lstm_dg_row(int64_t H, float* g, const float* c, const float* cp,
                              const float* dy, const float* dh, float* dc) {
    const V one = v_set1(1.0f);
    for (int64_t j = 0; j < H; j += FL_VW) {
        int64_t n = H - j;
        V i = v_load_n(g + j, n), f = v_load_n(g + H + j, n);
        V gg = v_load_n(g + 2 * H + j, n), o = v_load_n(g + 3 * H + j, n);
        V tc = v_tanh(v_load_n(c + j, n));
        /* dh = dy_t + dh_next;  dc = dc_next + dh * o * (1 - tanh(c)^2) */
        V dhv = v_add(v_load_n(dh + j, n), v_load_n(dy + j, n));
        V dcv = v_fmadd(v_mul(dhv, o), v_fnmadd(tc, tc, one), v_load_n(dc + j, n));
        v_store_n(dc + j, v_mul(dcv, f), n);
        /* dG = [dc*g*i*(1-i), dc*c_{t-1}*f*(1-f), dc*i*(1-g^2), dh*tanh(c)*o*(1-o)] */
        v_store_n(g + j, v_mul(v_mul(dcv, gg), v_fnmadd(i, i, i)), n);
        v_store_n(g + H + j, v_mul(v_mul(dcv, v_load_n(cp + j, n)), v_fnmadd(f, f, f)), n);
        v_store_n(g + 2 * H + j, v_mul(v_mul(dcv, i), v_fnmadd(gg, gg, one)), n);
        v_store_n(g + 3 * H + j, v_mul(v_mul(dhv, tc), v_fnmadd(o, o, o)), n);
    }
}

/* dG of one RNN row, in place over h_t: (dy_t + dh_next) * (1 - h_t^2) */
FL_INLINE void fl_rnn_dg_row(int64_t H, float* g, const float* dy, const float* dh) {
    const V one = v_set1(1.0f);
    for (int64_t j = 0; j < H; j += FL_VW) {
        int64_t n = H - j;
        V h = v_load_n(g + j, n);
        v_store_n(g + j, v_mul(v_add(v_load_n(dh + j, n), v_load_n(dy + j, n)),
                               v_fnmadd(h, h, one)), n);
    }
}

/* out rows = a rows W_hh for one tile of mr rows, every panel */
FL_INLINE void fl_btile(int mr, int ms, const float* const* a, int64_t K, int64_t H,
                        const float* wp, float* const* out) {
    V acc[FL_MR][FL_NV];
    int64_t np = fl_backward_panels(H);
    for (int64_t p = 0; p < np; p++) {
        fl_tile_acc(mr, ms, a, a, 0, K, wp + p * K * FL_PW, fl_zero_panel, acc);
#pragma GCC unroll 8
        for (int i = 0; i < FL_MR; i++) {
            if (i >= mr) break;
#pragma GCC unroll 4
            for (int v = 0; v < FL_NV; v++) {
                int64_t j0 = p * FL_PW + v * FL_VW;
                if (j0 < H) v_store_n(out[i] + j0, acc[i][v], H - j0);
            }
        }
    }
}

#define FL_BTILE_CASE(m) \
    case m: if (ms) fl_btile(m, 1, a, K, H, wp, out); else fl_btile(m, 0, a, K, H, wp, out); break;

static void fl_btile_rows(int mr, int ms, const float* const* a, int64_t K, int64_t H,
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

/* One step of backward for rows [r0, r1). */
static void fl_bstep(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1, double* db) {
    int64_t T = s->T, B = s->B, H = s->H, G = fl_cell_gates(s->cell) * H;
    int64_t t = s->reverse ? step : T - 1 - step;
    /* the step before t in the forward's running order, and how many of the
       rows ran there (the others started at t from the initial state) */
    int64_t tp = s->reverse ? t + 1 : t - 1;
    int64_t n = r0 + s->nact[t], hi = n < r1 ? n : r1, nprev;
    if (s->reverse) nprev = tp < T ? r0 + s->nact[tp] : r0;
    else nprev = t > 0 ? n : r0;
    int64_t base = s->toff ? s->toff[t] : t * B;
    int64_t pbase = tp < 0 || tp >= T ? 0 : s->toff ? s->toff[tp] : tp * B;
    const float* a[FL_MR];
    float* out[FL_MR];
    for (int64_t r = r0; r < hi; r += FL_MR) {
        int mr = (int)(hi - r < FL_MR ? hi - r : FL_MR);
        for (int i = 0; i < mr; i++) {
            int64_t row = r + i, at = base + row;
            float* g = s->dg + at * G;
            if (s->cell == FL_CELL_LSTM) {
                const float* cp = row < nprev ? s->cstore + (pbase + row) * H : s->c0 + row * H;
                fl_lstm_dg_row(H, g, s->cstore + at * H, cp, s->dy + at * s->ldy,
                               s->dh + row * H, s->dc + row * H);
            } else {
                fl_rnn_dg_row(H, g, s->dy + at * s->ldy, s->dh + row * H);
            }
            /* the bias gradient, in double, while the row is in cache */
            for (int64_t j = 0; j < G; j++) db[j] += (double)g[j];
            a[i] = g;
            out[i] = s->dh + row * H;
        }
        /* dh_{t-1} = dG_t W_hh */
        fl_btile_rows(mr, !s->exact, a, G, H, s->wp, out);
    }
    /* rows not running contribute nothing to the weight gradients (the
       packed layout stores none) */
    for (int64_t row = hi > r0 ? hi : r0; row < r1 && !s->toff; row++)
        memset(s->dg + (base + row) * G, 0, (size_t)G * sizeof(float));
}

void fl_bseq_run(const fl_bseq* s, int64_t r0, int64_t r1, double* db) {
    unsigned int fpstate = fl_denormals_off();
    for (int64_t step = 0; step < s->T; step++) fl_bstep(s, step, r0, r1, db);
    fl_denormals_restore(fpstate);
}

void fl_backward_gemm(int cell, int64_t rows, int64_t mr, int64_t H, const float* a,
                      int64_t lda, const float* wp, float* out, int64_t ldout) {
    int64_t K = fl_cell_gates(cell) * H;
    const float* ar[FL_MR];
    float* orow[FL_MR];
    if (mr < 1 || mr > FL_MR) mr = FL_MR;
    for (int64_t r = 0; r < rows; r += mr) {
        int m = (int)(rows - r < mr ? rows - r : mr);
        for (int i = 0; i < m; i++) {
            ar[i] = a + (r + i) * lda;
            orow[i] = out + (r + i) * ldout;
        }
        fl_btile_rows(m, 1, ar, K, H, wp, orow);
    }
}
