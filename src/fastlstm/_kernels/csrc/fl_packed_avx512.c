/* The packed kernels for AVX-512F (compiled with -mavx512f and friends). */
#include "fl_simd_avx512.h"
#include "fl_packed_impl.h"
#include "fl_backward_impl.h"
#include "fl_cells_impl.h"
#include "fl_wgrad_impl.h"
