/* The packed kernels' entry points (fl_packed.h, fl_backward.h): the cells
   of fl_cells.h in one table, read once per call or step, and the packing,
   thread schedule and test hooks, which know no cell.  Included by
   fl_packed_<isa>.c after fl_packed_impl.h and fl_backward_impl.h. */
#define FL_CELL_KERNELS
#include "fl_cells.h"

#define FL_CELL_ENTRY(name) &fl_##name##_cell,
static const fl_cell* const fl_cells[] = { FL_CELLS(FL_CELL_ENTRY) };
#undef FL_CELL_ENTRY
#define FL_NCELLS ((int)(sizeof(fl_cells) / sizeof(fl_cells[0])))

/* callers check the code (fl_cell_count) before anything else */
static inline const fl_cell* fl_cell_of(int cell) { return fl_cells[cell]; }

int fl_cell_count(void) { return FL_NCELLS; }
const char* fl_cell_name(int cell) { return fl_cell_of(cell)->name; }
int fl_cell_gates(int cell) { return fl_cell_of(cell)->gates; }
int fl_cell_states(int cell) { return fl_cell_of(cell)->states; }
int fl_cell_aux(int cell) { return fl_cell_of(cell)->aux; }

/* ------------------------------------------------------------- packing -- */
int64_t fl_packed_width(void) { return FL_VW; }
int64_t fl_packed_tile_rows(void) { return FL_MR; }
int64_t fl_packed_units(int cell) { return fl_cell_of(cell)->units; }
int64_t fl_packed_panels(int cell, int64_t H) {
    int64_t u = fl_packed_units(cell);
    return (H + u - 1) / u;
}
int64_t fl_packed_size(int cell, int64_t NI, int64_t H) {
    return fl_packed_panels(cell, H) * (NI + H) * FL_PW;
}
int64_t fl_packed_bias_size(int cell, int64_t H) { return fl_packed_panels(cell, H) * FL_PW; }

void fl_pack(int cell, int64_t NI, int64_t H, const float* w_ih, const float* w_hh,
             const float* b_ih, const float* b_hh, float* wp, float* bp) {
    fl_pack_panels(cell, NI, H, w_ih, w_hh, b_ih, b_hh, wp, bp, 0, fl_packed_panels(cell, H));
}

void fl_pack_panels(int cell, int64_t NI, int64_t H, const float* w_ih, const float* w_hh,
                    const float* b_ih, const float* b_hh, float* wp, float* bp,
                    int64_t p0, int64_t p1) {
    const fl_cell* c = fl_cell_of(cell);
    int64_t K = NI + H, p, k, v, l;
    for (p = p0; p < p1; p++) {
        float* panel = wp + p * K * FL_PW;
        for (v = 0; v < FL_NV; v++) {
            /* lane l of vector v: one row of W (over the parts of K the cell
               gives it, zeros elsewhere); its K entries go down the panel,
               reading each source row once, contiguously */
            float* col = panel + fl_panel_offset(K, 0, v);
            for (l = 0; l < FL_VW; l++) {
                int parts = 0, bias = 0;
                int64_t row = c->column(H, p, v, l, &parts, &bias);
                float* dst = col + l;
                float* b = bp + p * FL_PW + v * FL_VW + l;
                if (row < 0) row = 0, parts = bias = 0;   /* past H: zeros */
                *b = 0.0f;
                if (bias & FL_BIAS_IH) *b += b_ih[row];
                if (bias & FL_BIAS_HH) *b += b_hh[row];
                const float* src_ih = w_ih + row * NI;
                const float* src_hh = w_hh + row * H;
                for (k = 0; k < NI; k++)
                    dst[k * FL_PASS_W] = parts & FL_PART_X ? src_ih[k] : 0.0f;
                for (k = 0; k < H; k++)
                    dst[(NI + k) * FL_PASS_W] = parts & FL_PART_H ? src_hh[k] : 0.0f;
            }
        }
    }
}

/* ----------------------------------------------------------- the steps -- */
void fl_seq_run(const fl_seq* s, int64_t r0, int64_t r1, int64_t p0, int64_t p1,
                fl_gang* gang) {
    const fl_cell* c = fl_cell_of(s->cell);
    unsigned int fpstate = fl_denormals_off();
    if (gang == NULL) {
        for (int64_t step = 0; step < s->T; step++) c->step(s, step, r0, r1, p0, p1);
    } else {
        int64_t np = fl_packed_panels(s->cell, s->H), chunk = gang->chunk;
        int64_t chunks = (np + chunk - 1) / chunk, total = s->T * chunks;
        for (;;) {
            int64_t q = atomic_fetch_add_explicit(&gang->next, 1, memory_order_relaxed);
            if (q >= total) break;
            int64_t step = q / chunks, k = q % chunks;
            /* h_{t-1} is complete once every chunk of the previous step is */
            fl_gang_wait(gang, step * chunks);
            c->step(s, step, r0, r1, k * chunk, (k + 1) * chunk < np ? (k + 1) * chunk : np);
            atomic_fetch_add_explicit(&gang->done, 1, memory_order_release);
        }
    }
    fl_denormals_restore(fpstate);
}

/* ------------------------------------------------------------ backward -- */
int64_t fl_backward_size(int cell, int64_t H) {
    return fl_backward_panels(H) * fl_cell_gates(cell) * H * FL_PW;
}

void fl_pack_backward(int cell, int64_t H, const float* w_hh, float* wp) {
    int64_t K = fl_cell_gates(cell) * H, np = fl_backward_panels(H), p, k, v, l;
    for (p = 0; p < np; p++) {
        float* panel = wp + p * K * FL_PW;
        for (k = 0; k < K; k++) {
            const float* src = w_hh + k * H;
            for (v = 0; v < FL_NV; v++) {
                float* dst = panel + fl_panel_offset(K, k, v);
                for (l = 0; l < FL_VW; l++) {
                    int64_t col = p * FL_PW + v * FL_VW + l;
                    dst[l] = col < H ? src[col] : 0.0f;
                }
            }
        }
    }
}

void fl_bseq_run(const fl_bseq* s, int64_t r0, int64_t r1, double* db) {
    const fl_cell* c = fl_cell_of(s->cell);
    unsigned int fpstate = fl_denormals_off();
    for (int64_t step = 0; step < s->T; step++) c->bstep(s, step, r0, r1, db);
    fl_denormals_restore(fpstate);
}

void fl_bseq_run_gang(const fl_bseq* s, int64_t r0, int64_t r1, double* db, fl_gang* gang) {
    const fl_cell* c = fl_cell_of(s->cell);
    unsigned int fpstate = fl_denormals_off();
    int64_t np = fl_backward_panels(s->H), chunk = gang->chunk;
    int64_t chunks = (np + chunk - 1) / chunk, per = 1 + chunks, total = s->T * per;
    for (;;) {
        int64_t q = atomic_fetch_add_explicit(&gang->next, 1, memory_order_relaxed);
        if (q >= total) break;
        int64_t step = q / per, k = q % per;
        if (k == 0) {
            /* dL/dh_t is complete once every panel of the step before is */
            fl_gang_wait(gang, step * per);
            c->bstep_dg(s, step, r0, r1, db);
        } else {
            /* and the products read every row's gate gradients of this step */
            fl_gang_wait(gang, step * per + 1);
            int64_t p0 = (k - 1) * chunk, p1 = k * chunk < np ? k * chunk : np;
            c->bstep_mm(s, step, r0, r1, p0, p1);
        }
        atomic_fetch_add_explicit(&gang->done, 1, memory_order_release);
    }
    fl_denormals_restore(fpstate);
}

/* --------------------------------------------------------- test hooks -- */
void fl_backward_gemm(int cell, int64_t rows, int64_t mr, int64_t H, const float* a,
                      int64_t lda, const float* wp, float* out, int64_t ldout) {
    int64_t K = fl_cell_gates(cell) * H;
    const float* ar[FL_MR];
    float* orow[FL_MR];
    if (mr < 1 || mr > FL_MR) mr = FL_MR;
    for (int64_t r = 0; r < rows; r += mr) {
        int m = (int)(rows - r < mr ? rows - r : mr);
        for (int i = 0; i < m; i++) {
            ar[i] = a + (r + i) * lda;
            orow[i] = out + (r + i) * ldout;
        }
        fl_btile_rows(m, 1, 0, ar, K, H, wp, orow, 0, fl_backward_panels(H));
    }
}

#define FL_ACC_CASE(m) case m: fl_tile_acc(m, 1, FL_ALL, FL_ALL, xa, ha, NI, H, panel, bp + p * FL_PW, acc); break;

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
