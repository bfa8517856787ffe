/* The portable build has no packed kernels: width 0 tells the layer to use
   the BLAS path.  The other entry points are never called there. */
#include "fl_packed.h"

/* the cells' names (their codes are known on every build); nothing else */
#define FL_CELL_NAME(name) #name,
static const char* const fl_names[] = { FL_CELLS(FL_CELL_NAME) };
int fl_cell_count(void) { return (int)(sizeof(fl_names) / sizeof(fl_names[0])); }
const char* fl_cell_name(int cell) { return fl_names[cell]; }
int fl_cell_gates(int cell) { (void)cell; return 0; }
int fl_cell_states(int cell) { (void)cell; return 0; }
int fl_cell_aux(int cell) { (void)cell; return 0; }

int64_t fl_packed_width(void) { return 0; }
int64_t fl_packed_tile_rows(void) { return 0; }
int64_t fl_packed_units(int cell) { (void)cell; return 0; }
int64_t fl_packed_panels(int cell, int64_t H) { (void)cell; (void)H; return 0; }
int64_t fl_packed_size(int cell, int64_t NI, int64_t H) { (void)cell; (void)NI; (void)H; return 0; }
int64_t fl_packed_bias_size(int cell, int64_t H) { (void)cell; (void)H; return 0; }
void fl_pack(int cell, int64_t NI, int64_t H, const float* w_ih, const float* w_hh,
             const float* b_ih, const float* b_hh, float* wp, float* bp) {
    (void)cell; (void)NI; (void)H; (void)w_ih; (void)w_hh; (void)b_ih; (void)b_hh;
    (void)wp; (void)bp;
}
void fl_pack_panels(int cell, int64_t NI, int64_t H, const float* w_ih, const float* w_hh,
                    const float* b_ih, const float* b_hh, float* wp, float* bp,
                    int64_t p0, int64_t p1) {
    (void)cell; (void)NI; (void)H; (void)w_ih; (void)w_hh; (void)b_ih; (void)b_hh;
    (void)wp; (void)bp; (void)p0; (void)p1;
}
void fl_seq_run(const fl_seq* s, int64_t r0, int64_t r1, int64_t p0, int64_t p1,
                fl_gang* gang) {
    (void)s; (void)r0; (void)r1; (void)p0; (void)p1; (void)gang;
}
void fl_packed_gemm(int cell, int64_t rows, int64_t mr, int64_t NI, int64_t H, const float* x, int64_t ldx,
                    const float* h, int64_t ldh, const float* wp, const float* bp,
                    float* out, int64_t ldout) {
    (void)cell; (void)rows; (void)mr; (void)NI; (void)H; (void)x; (void)ldx; (void)h; (void)ldh;
    (void)wp; (void)bp; (void)out; (void)ldout;
}
void fl_sigmoid_n(const float* x, float* y, int64_t n) { (void)x; (void)y; (void)n; }
void fl_tanh_n(const float* x, float* y, int64_t n) { (void)x; (void)y; (void)n; }
double fl_fma_peak(int64_t iters) { (void)iters; return 0.0; }

#include "fl_backward.h"
int64_t fl_backward_panels(int64_t H) { (void)H; return 0; }
int64_t fl_backward_size(int cell, int64_t H) { (void)cell; (void)H; return 0; }
void fl_pack_backward(int cell, int64_t H, const float* w_hh, float* wp) {
    (void)cell; (void)H; (void)w_hh; (void)wp;
}
void fl_bseq_run(const fl_bseq* s, int64_t r0, int64_t r1, double* db) {
    (void)s; (void)r0; (void)r1; (void)db;
}
void fl_bseq_run_gang(const fl_bseq* s, int64_t r0, int64_t r1, double* db, fl_gang* gang) {
    (void)s; (void)r0; (void)r1; (void)db; (void)gang;
}
void fl_backward_gemm(int cell, int64_t rows, int64_t mr, int64_t H, const float* a,
                      int64_t lda, const float* wp, float* out, int64_t ldout) {
    (void)cell; (void)rows; (void)mr; (void)H; (void)a; (void)lda; (void)wp; (void)out;
    (void)ldout;
}

#include "fl_wgrad.h"
void fl_wgrad(int64_t rows, int64_t M, int64_t N, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* out, int64_t ldo) {
    (void)rows; (void)M; (void)N; (void)a; (void)lda; (void)b; (void)ldb; (void)out;
    (void)ldo;
}
