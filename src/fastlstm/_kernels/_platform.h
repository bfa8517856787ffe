/* What Cython cannot say portably: CPU feature queries and the flush-to-zero
   control.  Both are no-ops off x86, where the portable kernel is used. */
#ifndef FASTLSTM_PLATFORM_H
#define FASTLSTM_PLATFORM_H

#if defined(__SSE__) || defined(_M_X64) || defined(_M_AMD64)
#include <xmmintrin.h>
/* Flush denormals to zero (FTZ, bit 15) and treat denormal inputs as zero
   (DAZ, bit 6) on the calling thread: saturated gates produce tiny values
   whose denormal arithmetic is 10-100x slower.  Returns the old state. */
static inline unsigned int fl_denormals_off(void) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u);
    return old;
}
static inline void fl_denormals_restore(unsigned int old) { _mm_setcsr(old); }
#else
static inline unsigned int fl_denormals_off(void) { return 0u; }
static inline void fl_denormals_restore(unsigned int old) { (void)old; }
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
static inline int fl_cpu_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
    return 0;
}
#else
static inline int fl_cpu_level(void) { return 0; }
#endif


/* x clamped to [-c, c] in one expression, which GCC if-converts and
   vectorizes at every ISA level (Cython's lowering of a conditional
   expression goes through an if statement that the SSE2 build does not
   vectorize).  Written so that a NaN x passes through unchanged. */
static inline float fl_clampf(float x, float c) {
    return x > c ? c : (x < -c ? -c : x);
}

#endif
