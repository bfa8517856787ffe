/* The packed kernels for AVX2 + FMA (compiled with -mavx2 -mfma). */
#include "fl_simd_avx2.h"
#include "fl_packed_impl.h"
#include "fl_backward_impl.h"
#include "fl_cells_impl.h"
#include "fl_wgrad_impl.h"
