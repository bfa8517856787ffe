/* The vector vocabulary of the packed kernels for AVX-512F: 16 floats a
   vector (see fl_simd_avx2.h for the contract of each name). */
#ifndef FL_SIMD_H
#define FL_SIMD_H
#include <immintrin.h>
#include <stdint.h>

#define FL_VW 16
#define FL_MR 6          /* rows of a register tile */
#define FL_NVT 4         /* one pass: 6 x 4 accumulators + 4 weights + 1 broadcast of 32 registers */
#define FL_MAXACC 24
#define FL_ISA_NAME "avx512"

typedef __m512 V;

static inline V v_load(const float* p) { return _mm512_loadu_ps(p); }
static inline void v_store(float* p, V v) { _mm512_storeu_ps(p, v); }
static inline V v_set1(float x) { return _mm512_set1_ps(x); }
static inline V v_zero(void) { return _mm512_setzero_ps(); }
static inline V v_bcast(const float* p) { return _mm512_set1_ps(*p); }
static inline V v_add(V a, V b) { return _mm512_add_ps(a, b); }
static inline V v_sub(V a, V b) { return _mm512_sub_ps(a, b); }
static inline V v_mul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V v_fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline V v_fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
static inline V v_min(V a, V b) { return _mm512_min_ps(a, b); }
static inline V v_max(V a, V b) { return _mm512_max_ps(a, b); }
static inline V v_round(V a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline V v_pow2i(V n) {
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
/* p * 2^n for a whole n (p normal, the result normal or flushed to zero):
   exact, so any way of scaling gives the same bits */
static inline V v_ldexp(V p, V n) {
    return _mm512_scalef_ps(p, n);
}
/* 1/a: the 14-bit estimate and one Newton step */
static inline V v_recip(V a) {
    V r = _mm512_rcp14_ps(a);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(2.0f)));
}
static inline __mmask16 fl_mask_n(int64_t n) {
    return n >= FL_VW ? (__mmask16)0xFFFF : (__mmask16)((1u << (n <= 0 ? 0 : n)) - 1u);
}
static inline void v_store_n(float* p, V v, int64_t n) {
    if (n >= FL_VW) { _mm512_storeu_ps(p, v); return; }
    if (n <= 0) return;
    _mm512_mask_storeu_ps(p, fl_mask_n(n), v);
}
static inline V v_load_n(const float* p, int64_t n) {
    if (n >= FL_VW) return _mm512_loadu_ps(p);
    if (n <= 0) return _mm512_setzero_ps();
    return _mm512_maskz_loadu_ps(fl_mask_n(n), p);
}
#endif
