/* fl_wgrad (fl_wgrad.h) written against fl_simd_<isa>.h, compiled once per
   instruction set.  A tile holds MR rows of the output (entries of A's row,
   broadcast) by NVT vectors of columns (B's row, loaded): per row r, NVT
   loads, MR broadcasts and MR * NVT FMAs.  Where B is under two vectors
   wide, the tile is FL_MAXACC rows tall instead, so that the loads stay
   below the FMAs; where it is narrower than a whole tile (AVX-512 at 32 or
   48 columns), the tile takes the vectors B has and as many rows as the
   registers allow; where A is one column wide, a tile is one row of up to
   FL_WG_ROWV vectors.  Rows under a whole tile go in shorter tiles, never
   one sum at a time where several fit. */
#include "fl_wgrad.h"

#define FL_WG_INLINE static inline __attribute__((always_inline))
#define FL_WG_ROWV 8   /* vectors of a one-row tile, at most */
#define FL_WG_KB 96    /* rows of a block */

/* A full tile: MR output rows by NVT whole vectors, the accumulators in registers. */
FL_WG_INLINE void fl_wg_full(int64_t rows, const float* a, int64_t lda, const float* b,
                             int64_t ldb, float* out, int64_t ldo, const int MR, const int NVT,
                             int first) {
    V acc[FL_MAXACC > FL_WG_ROWV ? FL_MAXACC : FL_WG_ROWV];
    for (int i = 0; i < MR; i++)  /* a later block of rows goes on from the sums so far */
        for (int j = 0; j < NVT; j++)
            acc[i * NVT + j] = first ? v_zero() : v_load(out + i * ldo + j * FL_VW);
    for (int64_t r = 0; r < rows; r++) {
        const float* ar = a + r * lda;
        const float* br = b + r * ldb;
        V bv[FL_WG_ROWV];
        for (int j = 0; j < NVT; j++) bv[j] = v_load(br + j * FL_VW);
        for (int i = 0; i < MR; i++) {
            V av = v_bcast(ar + i);
            for (int j = 0; j < NVT; j++) acc[i * NVT + j] = v_fmadd(av, bv[j], acc[i * NVT + j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NVT; j++) v_store(out + i * ldo + j * FL_VW, acc[i * NVT + j]);
}

/* An edge tile: mr rows by nc columns, one vector of columns at a time and
   four rows at once (four independent sums, where one would wait on the
   latency of each FMA), the same sums. */
static void fl_wg_part(int64_t rows, const float* a, int64_t lda, int64_t mr, const float* b,
                       int64_t ldb, int64_t nc, float* out, int64_t ldo) {
    int64_t i = 0;
    for (; i + 4 <= mr; i += 4) {
        for (int64_t n0 = 0; n0 < nc; n0 += FL_VW) {
            V a0 = v_zero(), a1 = v_zero(), a2 = v_zero(), a3 = v_zero();
            for (int64_t r = 0; r < rows; r++) {
                const float* ar = a + r * lda + i;
                V bv = v_load_n(b + r * ldb + n0, nc - n0);
                a0 = v_fmadd(v_bcast(ar), bv, a0);
                a1 = v_fmadd(v_bcast(ar + 1), bv, a1);
                a2 = v_fmadd(v_bcast(ar + 2), bv, a2);
                a3 = v_fmadd(v_bcast(ar + 3), bv, a3);
            }
            v_store_n(out + i * ldo + n0, a0, nc - n0);
            v_store_n(out + (i + 1) * ldo + n0, a1, nc - n0);
            v_store_n(out + (i + 2) * ldo + n0, a2, nc - n0);
            v_store_n(out + (i + 3) * ldo + n0, a3, nc - n0);
        }
    }
    for (; i < mr; i++) {
        for (int64_t n0 = 0; n0 < nc; n0 += FL_VW) {
            V acc = v_zero();
            for (int64_t r = 0; r < rows; r++)
                acc = v_fmadd(v_bcast(a + r * lda + i), v_load_n(b + r * ldb + n0, nc - n0), acc);
            v_store_n(out + i * ldo + n0, acc, nc - n0);
        }
    }
}

/* Rows [m0, m1) by columns [0, nfull) in tiles of MR by NVT vectors, blocks of
   FL_WG_KB rows, so that the tiles of one block find its rows in cache; a
   tile's sums go on from block to block in row order (the same bits). */
FL_WG_INLINE void fl_wg_band(int64_t rows, int64_t m0, int64_t m1, int64_t nfull,
                             const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* out, int64_t ldo, const int MR, const int NVT) {
    const int64_t cols = (int64_t)NVT * FL_VW;
    for (int64_t r0 = 0; r0 == 0 || r0 < rows; r0 += FL_WG_KB) {  /* no rows: one pass, zeros */
        int64_t kb = rows - r0 < FL_WG_KB ? rows - r0 : FL_WG_KB;
        for (int64_t m = m0; m + MR <= m1; m += MR)
            for (int64_t n0 = 0; n0 < nfull; n0 += cols)
                fl_wg_full(kb, a + r0 * lda + m, lda, b + r0 * ldb + n0, ldb,
                           out + m * ldo + n0, ldo, MR, NVT, r0 == 0);
    }
}

/* Rows [0, M) in tiles of MR by columns [0, N) in tiles of NVT vectors; the
   rows under a whole tile in shorter tiles of 4, 2 and 1 rows (the same
   vectors of columns), the columns past the last whole tile on their own. */
FL_WG_INLINE void fl_wg_tiles(int64_t rows, int64_t M, int64_t N, const float* a, int64_t lda,
                              const float* b, int64_t ldb, float* out, int64_t ldo,
                              const int MR, const int NVT) {
    const int64_t cols = (int64_t)NVT * FL_VW;
    int64_t nfull = N - N % cols, m = M - M % MR, q;
    if (nfull == 0) {  /* not one whole tile of columns: every row, every column */
        fl_wg_part(rows, a, lda, M, b, ldb, N, out, ldo);
        return;
    }
    fl_wg_band(rows, 0, m, nfull, a, lda, b, ldb, out, ldo, MR, NVT);
    if (MR > 4 && 4 * NVT <= FL_MAXACC) {
        q = (M - m) / 4 * 4;
        fl_wg_band(rows, m, m + q, nfull, a, lda, b, ldb, out, ldo, 4, NVT);
        m += q;
    }
    if (MR > 2) {
        q = (M - m) / 2 * 2;
        fl_wg_band(rows, m, m + q, nfull, a, lda, b, ldb, out, ldo, 2, NVT);
        m += q;
    }
    fl_wg_band(rows, m, M, nfull, a, lda, b, ldb, out, ldo, 1, NVT);
    if (nfull < N)  /* the last columns, every row */
        fl_wg_part(rows, a, lda, M, b + nfull, ldb, N - nfull, out + nfull, ldo);
}

/* A one-row product's columns [n0, n0 + w) in tiles of NVT vectors, w the
   most whole tiles that fit before N; returns n0 + w. */
FL_WG_INLINE int64_t fl_wg_row(int64_t rows, int64_t n0, int64_t N, const float* a,
                               int64_t lda, const float* b, int64_t ldb, float* out,
                               int64_t ldo, const int NVT) {
    int64_t w = (N - n0) / (NVT * FL_VW) * (NVT * FL_VW);
    if (w) fl_wg_band(rows, 0, 1, w, a, lda, b + n0, ldb, out + n0, ldo, 1, NVT);
    return n0 + w;
}

void fl_wgrad(int64_t rows, int64_t M, int64_t N, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* out, int64_t ldo) {
    if (M <= 0 || N <= 0) return;
    if (N == 1 && ldo == 1 && M > 1) {
        /* a column: the same floats as the row out[n] = sum_r b[r] a[r, n] */
        fl_wgrad(rows, 1, M, b, ldb, a, lda, out, M);
        return;
    }
    if (M == 1) {
        /* one row: its whole vectors in tiles of 8, 4, 2 and 1 vectors (one
           sum per vector: as many at once as the columns give), the last
           floats on their own */
        int64_t n0 = 0;
        n0 = fl_wg_row(rows, n0, N, a, lda, b, ldb, out, ldo, FL_WG_ROWV);
        n0 = fl_wg_row(rows, n0, N, a, lda, b, ldb, out, ldo, 4);
        n0 = fl_wg_row(rows, n0, N, a, lda, b, ldb, out, ldo, 2);
        n0 = fl_wg_row(rows, n0, N, a, lda, b, ldb, out, ldo, 1);
        if (n0 < N) fl_wg_part(rows, a, lda, 1, b + n0, ldb, N - n0, out + n0, ldo);
    } else if (N < 2 * FL_VW) {
        fl_wg_tiles(rows, M, N, a, lda, b, ldb, out, ldo, FL_MAXACC, 1);
    } else if (N < FL_NVT * FL_VW) {
        /* narrower than a whole tile (AVX-512 at 32 or 48 columns): as many
           whole vectors as the columns hold, as many rows as registers allow */
        if (N < 3 * FL_VW)
            fl_wg_tiles(rows, M, N, a, lda, b, ldb, out, ldo, FL_MAXACC / 2, 2);
        else
            fl_wg_tiles(rows, M, N, a, lda, b, ldb, out, ldo, FL_MAXACC / 3, 3);
    } else {
        fl_wg_tiles(rows, M, N, a, lda, b, ldb, out, ldo, FL_MR, FL_NVT);
    }
}
