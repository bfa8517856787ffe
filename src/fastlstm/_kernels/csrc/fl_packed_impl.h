/* The packed recurrent kernels, written once against fl_simd_<isa>.h and
   compiled once per instruction set (fl_packed_<isa>.c, each with its own
   flags).  See fl_packed.h for the layout. */
#include <string.h>
#include "fl_packed.h"
#include "../_platform.h"

#define FL_NV 4                        /* vectors a panel is wide */
#define FL_PW (FL_NV * FL_VW)          /* floats a panel row holds */
#define FL_INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- math --
   exp(x) = 2^n * p(r), n = round(x / ln 2), r = x - n ln 2 (two-part ln 2),
   p the degree-7 Taylor-like polynomial of Cephes' expf; inputs clamped to
   [-88.37, 88.37] so 2^n stays a normal number.  The reciprocal is the
   hardware estimate plus one Newton step.  Measured against float64 over
   [-20, 20] (tests/test_kernels_packed.py): sigmoid within 2.4e-7 and tanh
   within 4.8e-7 absolute.  NaN passes through (min/max take it second). */
FL_INLINE V v_exp(V x) {
    x = v_min(v_set1(88.37f), x);
    x = v_max(v_set1(-88.37f), x);
    V n = v_round(v_mul(x, v_set1(1.44269504088896341f)));
    V r = v_fnmadd(n, v_set1(0.693359375f), x);
    r = v_fnmadd(n, v_set1(-2.12194440e-4f), r);
    V p = v_set1(1.9875691500e-4f);
    p = v_fmadd(p, r, v_set1(1.3981999507e-3f));
    p = v_fmadd(p, r, v_set1(8.3334519073e-3f));
    p = v_fmadd(p, r, v_set1(4.1665795894e-2f));
    p = v_fmadd(p, r, v_set1(1.6666665459e-1f));
    p = v_fmadd(p, r, v_set1(5.0000001201e-1f));
    p = v_fmadd(p, v_mul(r, r), v_add(r, v_set1(1.0f)));
    return v_mul(p, v_pow2i(n));
}

/* sigmoid(x) = 1 / (1 + exp(-x)) */
FL_INLINE V v_sigmoid(V x) {
    return v_recip(v_add(v_set1(1.0f), v_exp(v_sub(v_zero(), x))));
}

/* tanh(x) = (1 - e) / (1 + e), e = exp(-2x), on x clamped to [-9, 9] (where
   float32 tanh is already +-1): exact at 0, and 1 + e stays far from the
   range where the reciprocal estimate flushes to zero. */
FL_INLINE V v_tanh(V x) {
    x = v_min(v_set1(9.0f), x);
    x = v_max(v_set1(-9.0f), x);
    V e = v_exp(v_mul(v_set1(-2.0f), x));
    return v_mul(v_sub(v_set1(1.0f), e), v_recip(v_add(v_set1(1.0f), e)));
}

/* ------------------------------------------------------------- packing -- */
int64_t fl_packed_width(void) { return FL_VW; }
int64_t fl_packed_tile_rows(void) { return FL_MR; }
int64_t fl_packed_units(int cell) { return cell == FL_CELL_LSTM ? FL_VW : FL_PW; }
int64_t fl_packed_panels(int cell, int64_t H) {
    int64_t u = fl_packed_units(cell);
    return (H + u - 1) / u;
}
int64_t fl_packed_size(int cell, int64_t NI, int64_t H) {
    return fl_packed_panels(cell, H) * (NI + H) * FL_PW;
}
int64_t fl_packed_bias_size(int cell, int64_t H) { return fl_packed_panels(cell, H) * FL_PW; }

/* ---------------------------------------------------------- the tile --
   acc[i][v] = b + x_i W_ih-part + h_i W_hh-part for `mr` rows and one
   panel, accumulated in registers.  A panel is stored as FL_NV / FL_NVT
   passes of K rows x FL_NVT vectors: AVX2's 16 registers hold 6 rows x 2
   vectors of accumulators (the first pass's results wait on the stack for
   the second), AVX-512's 32 hold 6 x 4 in one pass.  Per k, a pass loads
   FL_NVT weight vectors once (kept in registers: see FL_KEEP) and
   broadcasts one input per row.  A single row runs 8 / FL_NVT interleaved
   k-streams so that eight FMA chains hide the FMA latency. */
#define FL_PASSES (FL_NV / FL_NVT)
#define FL_PASS_W (FL_NVT * FL_VW)                   /* floats a pass row holds */
/* Make the compiler hold v in a register: without it GCC folds the weight
   loads into every row's FMA, twice the loads the tile needs. */
#if defined(__AVX512F__)
#define FL_KEEP(v) __asm__("" : "+v"(v))
#else
#define FL_KEEP(v) __asm__("" : "+x"(v))
#endif

/* offset of (k, vector v) inside a panel of K rows */
static inline int64_t fl_panel_offset(int64_t K, int64_t k, int64_t v) {
    return (v / FL_NVT) * K * FL_PASS_W + k * FL_PASS_W + (v % FL_NVT) * FL_VW;
}

/* k-streams for an mr-row tile: enough independent accumulator chains (8)
   to cover FMA latency x ports, within the registers (FL_MAXACC). */
#define FL_STREAMS_FOR(mr) \
    ((mr) * FL_NVT >= 8 ? 1 : ((8 + (mr) * FL_NVT - 1) / ((mr) * FL_NVT)) * (mr) * FL_NVT \
     <= FL_MAXACC ? (8 + (mr) * FL_NVT - 1) / ((mr) * FL_NVT) : 1)
#define FL_SMAX 8

/* ms: split k into streams (faster for short tiles, but a row's rounding
   then depends on the tile's height); 0 gives every row the same arithmetic
   in a tile of any height. */
FL_INLINE void fl_tile_acc(int mr, int ms, const float* const* xa, const float* const* ha,
                           int64_t NI, int64_t H, const float* panel, const float* b,
                           V acc[FL_MR][FL_NV]) {
    const int S = ms ? FL_STREAMS_FOR(mr) : 1;
    int64_t K = NI + H, k;
    int i, j, q, u;
#pragma GCC unroll 4
    for (q = 0; q < FL_PASSES; q++) {
        const float* w = panel + q * K * FL_PASS_W;
        const float* bq = b + q * FL_PASS_W;
        V c[FL_SMAX][FL_MR][FL_NVT];
#pragma GCC unroll 8
        for (u = 0; u < S; u++)
#pragma GCC unroll 8
            for (i = 0; i < mr; i++)
#pragma GCC unroll 4
                for (j = 0; j < FL_NVT; j++) c[u][i][j] = u == 0 ? v_load(bq + j * FL_VW) : v_zero();
        for (int part = 0; part < 2; part++) {
            int64_t Kp = part == 0 ? NI : H;
            const float* const* a = part == 0 ? xa : ha;
            /* S consecutive k's at a time, one per stream */
            for (k = 0; k + S <= Kp; k += S, w += S * FL_PASS_W) {
#pragma GCC unroll 8
                for (u = 0; u < S; u++) {
                    V bw[FL_NVT];
#pragma GCC unroll 4
                    for (j = 0; j < FL_NVT; j++) {
                        bw[j] = v_load(w + u * FL_PASS_W + j * FL_VW);
                        FL_KEEP(bw[j]);
                    }
#pragma GCC unroll 8
                    for (i = 0; i < mr; i++) {
                        V ai = v_bcast(a[i] + k + u);
#pragma GCC unroll 4
                        for (j = 0; j < FL_NVT; j++) c[u][i][j] = v_fmadd(ai, bw[j], c[u][i][j]);
                    }
                }
            }
            for (; k < Kp; k++, w += FL_PASS_W) {
#pragma GCC unroll 8
                for (i = 0; i < mr; i++) {
                    V ai = v_bcast(a[i] + k);
#pragma GCC unroll 4
                    for (j = 0; j < FL_NVT; j++)
                        c[0][i][j] = v_fmadd(ai, v_load(w + j * FL_VW), c[0][i][j]);
                }
            }
        }
#pragma GCC unroll 8
        for (i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (j = 0; j < FL_NVT; j++) {
                V sum = c[0][i][j];
#pragma GCC unroll 8
                for (u = 1; u < S; u++) sum = v_add(sum, c[u][i][j]);
                acc[i][q * FL_NVT + j] = sum;
            }
    }
}

/* Row of W (G*H rows, PyTorch's gate blocks) that panel p, vector v, lane l
   holds, or -1 past H. */
static inline int64_t fl_column(int cell, int64_t H, int64_t p, int64_t v, int64_t l) {
    int64_t unit;
    if (cell == FL_CELL_LSTM) {
        unit = p * FL_VW + l;
        return unit < H ? v * H + unit : -1;
    }
    unit = (p * FL_NV + v) * FL_VW + l;
    return unit < H ? unit : -1;
}

void fl_pack(int cell, int64_t NI, int64_t H, const float* w_ih, const float* w_hh,
             const float* b_ih, const float* b_hh, float* wp, float* bp) {
    int64_t np = fl_packed_panels(cell, H), K = NI + H, p, k, v, l;
    for (p = 0; p < np; p++) {
        float* panel = wp + p * K * FL_PW;
        for (v = 0; v < FL_NV; v++) {
            /* lane l of vector v: one row of W; its K entries go down the
               panel, reading each source row once, contiguously */
            float* col = panel + fl_panel_offset(K, 0, v);
            for (l = 0; l < FL_VW; l++) {
                int64_t row = fl_column(cell, H, p, v, l);
                float* dst = col + l;
                if (row < 0) {
                    bp[p * FL_PW + v * FL_VW + l] = 0.0f;
                    for (k = 0; k < K; k++) dst[k * FL_PASS_W] = 0.0f;
                    continue;
                }
                bp[p * FL_PW + v * FL_VW + l] = b_ih[row] + b_hh[row];
                const float* src_ih = w_ih + row * NI;
                const float* src_hh = w_hh + row * H;
                for (k = 0; k < NI; k++) dst[k * FL_PASS_W] = src_ih[k];
                for (k = 0; k < H; k++) dst[(NI + k) * FL_PASS_W] = src_hh[k];
            }
        }
    }
}

/* Where step t's row `row` lives in the time-major buffers: padded (t*B
   rows a step) or packed (toff[t] rows before step t). */
static inline int64_t fl_trow(const fl_seq* s, int64_t t, int64_t row) {
    return (s->toff ? s->toff[t] : t * s->B) + row;
}
static inline const float* fl_xrow(const fl_seq* s, int64_t t, int64_t row) {
    return s->x + (s->toff ? (s->toff[t] + row) * s->ldx : t * s->xts + row * s->ldx);
}
static inline float* fl_orow(const fl_seq* s, int64_t t, int64_t row) {
    return s->out + (s->toff ? (s->toff[t] + row) * s->ldo : t * s->ots + row * s->ldo);
}

/* The cell's epilogue on the tile, while it is in registers. */
FL_INLINE void fl_tile_cell(const fl_seq* s, int mr, int64_t t, int64_t r, int64_t p,
                            V acc[FL_MR][FL_NV]) {
    int64_t H = s->H;
    int i, v;
    if (s->cell == FL_CELL_LSTM) {
        int64_t j0 = p * FL_VW, nv = H - j0 < FL_VW ? H - j0 : FL_VW;
#pragma GCC unroll 8
        for (i = 0; i < FL_MR; i++) {
            if (i >= mr) break;
            int64_t row = fl_trow(s, t, r + i);
            /* i, f, o = sigmoid(G_i, G_f, G_o); g = tanh(G_g) */
            V ig = v_sigmoid(acc[i][0]), fg = v_sigmoid(acc[i][1]);
            V gg = v_tanh(acc[i][2]), og = v_sigmoid(acc[i][3]);
            /* c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t) */
            float* cp = s->c + (r + i) * s->ldc + j0;
            V cn = v_fmadd(fg, v_load(cp), v_mul(ig, gg));
            v_store(cp, cn);
            v_store_n(fl_orow(s, t, r + i) + j0, v_mul(og, v_tanh(cn)), nv);
            if (s->acts) {
                float* a = s->acts + row * 4 * H + j0;
                v_store_n(a, ig, nv);
                v_store_n(a + H, fg, nv);
                v_store_n(a + 2 * H, gg, nv);
                v_store_n(a + 3 * H, og, nv);
            }
            if (s->cstore) v_store_n(s->cstore + row * H + j0, cn, nv);
        }
    } else {
#pragma GCC unroll 8
        for (i = 0; i < FL_MR; i++) {
            if (i >= mr) break;
            int64_t row = fl_trow(s, t, r + i);
            for (v = 0; v < FL_NV; v++) {
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
}

FL_INLINE void fl_tile(const fl_seq* s, int mr, int ms, int64_t t, int64_t r, int64_t p,
                       const float* const* xa, const float* const* ha) {
    V acc[FL_MR][FL_NV];
    fl_tile_acc(mr, ms, xa, ha, s->NI, s->H, s->wp + p * (s->NI + s->H) * FL_PW,
                s->bp + p * FL_PW, acc);
    fl_tile_cell(s, mr, t, r, p, acc);
}

#define FL_TILE_CASE(m) \
    case m: if (ms) fl_tile(s, m, 1, t, r, p, xa, ha); else fl_tile(s, m, 0, t, r, p, xa, ha); break;

static void fl_tile_rows(const fl_seq* s, int mr, int ms, int64_t t, int64_t r, int64_t p,
                         const float* const* xa, const float* const* ha) {
    switch (mr) {
        FL_TILE_CASE(1)
        FL_TILE_CASE(2)
#if FL_MR > 2
        FL_TILE_CASE(3)
#endif
#if FL_MR > 3
        FL_TILE_CASE(4)
#endif
#if FL_MR > 4
        FL_TILE_CASE(5)
#endif
#if FL_MR > 5
        FL_TILE_CASE(6)
#endif
        default: break;
    }
}

/* ----------------------------------------------------------- the steps -- */
/* One step: rows [r0, r1), panels [p0, p1). */
static void fl_step(const fl_seq* s, int64_t step, int64_t r0, int64_t r1, int64_t p0,
                    int64_t p1) {
    int64_t T = s->T, H = s->H, U = fl_packed_units(s->cell);
    int64_t c0 = p0 * U, c1 = p1 * U < H ? p1 * U : H;
    const float* xa[FL_MR];
    const float* ha[FL_MR];
    int64_t t = s->reverse ? T - 1 - step : step;
    int64_t tp = s->reverse ? t + 1 : t - 1;   /* the step before, in running order */
    /* running rows are [r0, r0 + nact[t]) */
    int64_t n = r0 + s->nact[t], nprev = step == 0 ? r0 : r0 + s->nact[tp];
    int64_t hi = n < r1 ? n : r1;
    for (int64_t p = p0; p < p1; p++) {
        for (int64_t r = r0; r < hi; r += FL_MR) {
            int mr = (int)(hi - r < FL_MR ? hi - r : FL_MR);
            for (int i = 0; i < mr; i++) {
                int64_t row = r + i;
                xa[i] = fl_xrow(s, t, row);
                /* h_{t-1}: the row's previous output, or h0 where it starts */
                ha[i] = row < nprev ? fl_orow(s, tp, row) : s->h0 + row * H;
            }
            fl_tile_rows(s, mr, !s->exact, t, r, p, xa, ha);
        }
    }
    /* rows past their end output zeros (the packed layout stores none) */
    for (int64_t row = (n > r0 ? n : r0); row < r1 && !s->toff; row++) {
        memset(fl_orow(s, t, row) + c0, 0, (size_t)(c1 - c0) * sizeof(float));
    }
}

void fl_seq_run(const fl_seq* s, int64_t r0, int64_t r1, int64_t p0, int64_t p1,
                fl_gang* gang) {
    unsigned int fpstate = fl_denormals_off();
    if (gang == NULL) {
        for (int64_t step = 0; step < s->T; step++) fl_step(s, step, r0, r1, p0, p1);
    } else {
        int64_t np = fl_packed_panels(s->cell, s->H), chunk = gang->chunk;
        int64_t chunks = (np + chunk - 1) / chunk, total = s->T * chunks;
        for (;;) {
            int64_t q = atomic_fetch_add_explicit(&gang->next, 1, memory_order_relaxed);
            if (q >= total) break;
            int64_t step = q / chunks, c = q % chunks;
            /* h_{t-1} is complete once every chunk of the previous step is */
            fl_gang_wait(gang, step * chunks);
            fl_step(s, step, r0, r1, c * chunk, (c + 1) * chunk < np ? (c + 1) * chunk : np);
            atomic_fetch_add_explicit(&gang->done, 1, memory_order_release);
        }
    }
    fl_denormals_restore(fpstate);
}

/* --------------------------------------------------------- test hooks -- */
#define FL_ACC_CASE(m) case m: fl_tile_acc(m, 1, xa, ha, NI, H, panel, bp + p * FL_PW, acc); break;

void fl_packed_gemm(int cell, int64_t rows, int64_t mr, int64_t NI, int64_t H, const float* x,
                    int64_t ldx, const float* h, int64_t ldh, const float* wp, const float* bp,
                    float* out, int64_t ldout) {
    int64_t np = fl_packed_panels(cell, H);
    const float* xa[FL_MR];
    const float* ha[FL_MR];
    V acc[FL_MR][FL_NV];
    if (mr < 1 || mr > FL_MR) mr = FL_MR;
    for (int64_t p = 0; p < np; p++) {
        const float* panel = wp + p * (NI + H) * FL_PW;
        for (int64_t r = 0; r < rows; r += mr) {
            int m = (int)(rows - r < mr ? rows - r : mr);
            for (int i = 0; i < m; i++) {
                xa[i] = x + (r + i) * ldx;
                ha[i] = h + (r + i) * ldh;
            }
            switch (m) {
                FL_ACC_CASE(1)
                FL_ACC_CASE(2)
#if FL_MR > 2
                FL_ACC_CASE(3)
#endif
#if FL_MR > 3
                FL_ACC_CASE(4)
#endif
#if FL_MR > 4
                FL_ACC_CASE(5)
#endif
#if FL_MR > 5
                FL_ACC_CASE(6)
#endif
                default: break;
            }
            for (int i = 0; i < m; i++)
                for (int v = 0; v < FL_NV; v++)
                    v_store(out + (r + i) * ldout + p * FL_PW + v * FL_VW, acc[i][v]);
        }
    }
}

void fl_sigmoid_n(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i += FL_VW)
        v_store_n(y + i, v_sigmoid(v_load_n(x + i, n - i)), n - i);
}

void fl_tanh_n(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i += FL_VW)
        v_store_n(y + i, v_tanh(v_load_n(x + i, n - i)), n - i);
}

double fl_fma_peak(int64_t iters) {
    /* twelve independent chains: more than FMA latency x FMA ports on the
       cores we know (4 x 2), so the loop runs at the FMA throughput */
    V a[12];
    V m = v_set1(0.9999999f), c = v_set1(1e-7f);
    for (int j = 0; j < 12; j++) a[j] = v_set1(1.0f + (float)j);
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) a[j] = v_fmadd(a[j], m, c);
    }
    V sum = a[0];
    for (int j = 1; j < 12; j++) sum = v_add(sum, a[j]);
    float out[FL_VW];
    v_store(out, sum);
    volatile float sink = out[0];
    (void)sink;
    return 2.0 * FL_VW * 12.0 * (double)iters;
}
