/* The packed recurrent kernels' cell-agnostic parts, written once against
   fl_simd_<isa>.h and compiled once per instruction set (fl_packed_<isa>.c,
   each with its own flags): the gate functions, the register tile, row
   addressing and the table of cells.  A cell's own code (fl_cell_<name>.h)
   instantiates fl_cell_kernels.h; fl_cells_impl.h holds the entry points.
   See fl_packed.h for the layout. */
#include <string.h>
#include "fl_packed.h"
#include "fl_backward.h"
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
FL_INLINE V v_exp_in_range(V x) {  /* x already within [-88.37, 88.37] */
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
    return v_ldexp(p, n);
}

FL_INLINE V v_exp(V x) {
    x = v_min(v_set1(88.37f), x);
    x = v_max(v_set1(-88.37f), x);
    return v_exp_in_range(x);
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
    V e = v_exp_in_range(v_mul(v_set1(-2.0f), x));
    return v_mul(v_sub(v_set1(1.0f), e), v_recip(v_add(v_set1(1.0f), e)));
}

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

/* One part of K (the x rows or the h rows) of pass q into the stream
   accumulators c, advancing *wp past its rows.  Only the vectors set in
   `mask` (bit v: panel vector v) are loaded and multiplied: a cell whose
   columns are zero over a part (the GRU's n_x over h, n_h over x) skips
   them.  mask and q are constants where this is inlined. */
FL_INLINE void fl_tile_part(int mr, int S, int mask, int q, const float* const* a, int64_t Kp,
                            const float** wp, V c[FL_SMAX][FL_MR][FL_NVT]) {
    const float* w = *wp;
    int64_t k;
    int i, j, u;
    /* S consecutive k's at a time, one per stream */
    for (k = 0; k + S <= Kp; k += S, w += S * FL_PASS_W) {
#pragma GCC unroll 8
        for (u = 0; u < S; u++) {
            V bw[FL_NVT];
#pragma GCC unroll 4
            for (j = 0; j < FL_NVT; j++) {
                if (!((mask >> (q * FL_NVT + j)) & 1)) continue;
                bw[j] = v_load(w + u * FL_PASS_W + j * FL_VW);
                FL_KEEP(bw[j]);
            }
#pragma GCC unroll 8
            for (i = 0; i < mr; i++) {
                V ai = v_bcast(a[i] + k + u);
#pragma GCC unroll 4
                for (j = 0; j < FL_NVT; j++)
                    if ((mask >> (q * FL_NVT + j)) & 1) c[u][i][j] = v_fmadd(ai, bw[j], c[u][i][j]);
            }
        }
    }
    for (; k < Kp; k++, w += FL_PASS_W) {
#pragma GCC unroll 8
        for (i = 0; i < mr; i++) {
            V ai = v_bcast(a[i] + k);
#pragma GCC unroll 4
            for (j = 0; j < FL_NVT; j++)
                if ((mask >> (q * FL_NVT + j)) & 1)
                    c[0][i][j] = v_fmadd(ai, v_load(w + j * FL_VW), c[0][i][j]);
        }
    }
    *wp = w;
}

/* ms: split k into streams (faster for short tiles, but a row's rounding
   then depends on the tile's height); 0 gives every row the same arithmetic
   in a tile of any height.  xmask, hmask: the panel vectors with weights
   over x and over h (FL_ALL: every vector, both parts). */
#define FL_ALL ((1 << FL_NV) - 1)
FL_INLINE void fl_tile_acc(int mr, int ms, int xmask, int hmask, const float* const* xa,
                           const float* const* ha, int64_t NI, int64_t H, const float* panel,
                           const float* b, V acc[FL_MR][FL_NV]) {
    const int S = ms ? FL_STREAMS_FOR(mr) : 1;
    int64_t K = NI + H;
    int i, j, q, u;
#pragma GCC unroll 4
    for (q = 0; q < FL_PASSES; q++) {
        const float* w = panel + q * K * FL_PASS_W;
        const float* bq = b + q * FL_PASS_W;
        V c[FL_SMAX][FL_MR][FL_NVT];
        if (!(((xmask | hmask) >> (q * FL_NVT)) & ((1 << FL_NVT) - 1))) {
            /* no vector of this pass is live (past H in the backward's last
               panel): nothing to multiply */
#pragma GCC unroll 8
            for (i = 0; i < mr; i++)
#pragma GCC unroll 4
                for (j = 0; j < FL_NVT; j++) acc[i][q * FL_NVT + j] = v_zero();
            continue;
        }
#pragma GCC unroll 8
        for (u = 0; u < S; u++)
#pragma GCC unroll 8
            for (i = 0; i < mr; i++)
#pragma GCC unroll 4
                for (j = 0; j < FL_NVT; j++) c[u][i][j] = u == 0 ? v_load(bq + j * FL_VW) : v_zero();
        if (xmask == FL_ALL && hmask == FL_ALL) {
            /* every vector over both parts: one loop over the two */
            for (int part = 0; part < 2; part++)
                fl_tile_part(mr, S, FL_ALL, q, part ? ha : xa, part ? H : NI, &w, c);
        } else {
            fl_tile_part(mr, S, xmask, q, xa, NI, &w, c);
            fl_tile_part(mr, S, hmask, q, ha, H, &w, c);
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

/* ------------------------------------------------------- the cell table --
   What the cell-agnostic code needs of a cell, filled in by
   fl_cell_kernels.h from its header.  The tile loops are instantiated per
   cell there with its epilogue and gate-gradient row inlined: the table is
   read once per step (forward) or step of a shard (backward), never per
   element. */
#define FL_PART_X 1                    /* a packed column's weights over x ... */
#define FL_PART_H 2                    /* ... and over h */
#define FL_BIAS_IH 1                   /* a packed column's bias: b_ih ... */
#define FL_BIAS_HH 2                   /* ... plus b_hh */

typedef struct {
    const char* name;
    int gates;                         /* gate blocks of H rows in W_ih, W_hh */
    int states;                        /* 1: h; 2: h and fl_seq.c */
    int aux;                           /* fl_seq.aux floats per row, in H */
    int64_t units;                     /* hidden units a panel covers */
    /* The row of W (G*H rows) that lane l of vector v of panel p holds, or
       -1 (past H); which parts of K it spans (FL_PART_*) and its bias. */
    int64_t (*column)(int64_t H, int64_t p, int64_t v, int64_t l, int* parts, int* bias);
    /* one step of the forward: rows [r0, r1), panels [p0, p1) */
    void (*step)(const fl_seq* s, int64_t step, int64_t r0, int64_t r1, int64_t p0, int64_t p1);
    /* one step of the backward, rows [r0, r1) */
    void (*bstep)(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1, double* db);
    /* the same in two parts: every row's gate gradients, then dh_{t-1} over
       panels [p0, p1) */
    void (*bstep_dg)(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1, double* db);
    void (*bstep_mm)(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1, int64_t p0,
                     int64_t p1);
} fl_cell;
