/* The vector vocabulary of the packed kernels for AVX2 + FMA: 8 floats a
   vector.  fl_packed_impl.h is written against these names only; this file
   and fl_simd_avx512.h are its two instruction sets. */
#ifndef FL_SIMD_H
#define FL_SIMD_H
#include <immintrin.h>
#include <stdint.h>

#define FL_VW 8          /* floats per vector */
#define FL_MR 6          /* rows of a register tile */
#define FL_NVT 2         /* vectors a tile pass accumulates: 6 x 2 accumulators, 2 weights, 1 broadcast */
#define FL_MAXACC 12     /* accumulators that fit beside them */
#define FL_ISA_NAME "avx2"

typedef __m256 V;

static inline V v_load(const float* p) { return _mm256_loadu_ps(p); }
static inline void v_store(float* p, V v) { _mm256_storeu_ps(p, v); }
static inline V v_set1(float x) { return _mm256_set1_ps(x); }
static inline V v_zero(void) { return _mm256_setzero_ps(); }
static inline V v_bcast(const float* p) { return _mm256_broadcast_ss(p); }
static inline V v_add(V a, V b) { return _mm256_add_ps(a, b); }
static inline V v_sub(V a, V b) { return _mm256_sub_ps(a, b); }
static inline V v_mul(V a, V b) { return _mm256_mul_ps(a, b); }
static inline V v_fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }   /* a*b + c */
static inline V v_fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); } /* c - a*b */
/* min/max return the second operand when either is NaN: callers pass the
   data second so that a NaN passes through. */
static inline V v_min(V a, V b) { return _mm256_min_ps(a, b); }
static inline V v_max(V a, V b) { return _mm256_max_ps(a, b); }
static inline V v_round(V a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral-valued n in [-126, 127] */
static inline V v_pow2i(V n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
/* p * 2^n for a whole n (p normal, the result normal or flushed to zero):
   exact, so any way of scaling gives the same bits */
static inline V v_ldexp(V p, V n) {
    return _mm256_mul_ps(p, v_pow2i(n));
}
/* 1/a: the hardware estimate (12 bits) and one Newton step */
static inline V v_recip(V a) {
    V r = _mm256_rcp_ps(a);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(a, r, _mm256_set1_ps(2.0f)));
}
/* the first n (0..8) lanes */
static inline void v_store_n(float* p, V v, int64_t n) {
    if (n >= FL_VW) { _mm256_storeu_ps(p, v); return; }
    if (n <= 0) return;
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
    _mm256_maskstore_ps(p, mask, v);
}
static inline V v_load_n(const float* p, int64_t n) {
    if (n >= FL_VW) return _mm256_loadu_ps(p);
    if (n <= 0) return _mm256_setzero_ps();
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
    return _mm256_maskload_ps(p, mask);
}
#endif
