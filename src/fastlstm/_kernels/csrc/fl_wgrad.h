/* Weight gradients on the packed kernels' register tiles.

   out[m*ldo + n] = sum over r < rows of a[r*lda + m] * b[r*ldb + n], for
   m < M, n < N: the product A^T B of two row-major blocks of `rows` rows
   (A: the gate gradients dG, B: the inputs or the previous hidden states),
   which is dW = dG^T X.  Each entry is summed over r in order with one FMA
   a row, so it is the same whatever the tile or the thread that formed it.
   rows = 0 writes zeros. */
#ifndef FL_WGRAD_H
#define FL_WGRAD_H
#include <stdint.h>

void fl_wgrad(int64_t rows, int64_t M, int64_t N, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* out, int64_t ldo);
#endif
