/* The tile loops of one cell: included (no include guard) at the end of
   each fl_cell_<name>.h, which defines before it

     FL_CELL            the cell's name (fl_<name>_... functions below)
     FL_CELL_GATES      gate blocks of H rows in W_ih, W_hh
     FL_CELL_STATES     1: h; 2: h and fl_seq.c (the LSTM's c)
     FL_CELL_AUX        fl_seq.aux floats per row, in H (0: none)
     FL_CELL_AUX_PREV   1: the gradient row reads the previous step's aux
                        (c0 where a row starts), as the LSTM's c_{t-1}
     FL_CELL_DGH_AUX    1: the gradient row leaves the recurrent side's dG_h
                        in aux (GRU) and sets dh to the direct path dh_{t-1}
                        that dG_h W_hh is added to; 0: dG_h = dG, dh is
                        overwritten by dG W_hh
     FL_CELL_VECTORS    vectors of a panel one hidden unit's lane spans (the
                        panel covers FL_VW * FL_NV / FL_CELL_VECTORS units)
     FL_CELL_XMASK      optional: the panel vectors with weights over x, and
     FL_CELL_HMASK      over h (bit v: vector v; default all): the tile skips
                        the others' zeros

   and the functions
     fl_<name>_column(H, p, v, l, &parts, &bias)   its packing (fl_cell.column)
     fl_<name>_epilogue(s, mr, t, r, p, acc, ha)   the gate math on the tile:
                        acc holds [x_t | h_{t-1}] W_packed + b for rows
                        r..r+mr of step t and panel p, ha[i] points to row
                        i's h_{t-1}; writes h_t, c, acts and aux
     fl_<name>_dg_row(H, g, aux, auxp, dy, dh, dc) the gate gradients of one
                        row in place over its activations g (and aux).

   Out of it come fl_<name>_step and fl_<name>_bstep, each with the cell's
   code inlined into the tile loops, and the table entry fl_<name>_cell. */
#define FL_PASTE_(a, b, c) a##b##c
#define FL_PASTE(a, b, c) FL_PASTE_(a, b, c)
#define FL_FN(f) FL_PASTE(fl_, FL_CELL, _##f)
#ifndef FL_CELL_XMASK
#define FL_CELL_XMASK FL_ALL
#endif
#ifndef FL_CELL_HMASK
#define FL_CELL_HMASK FL_ALL
#endif
#define FL_STR_(x) #x
#define FL_STR(x) FL_STR_(x)

FL_INLINE void FL_FN(tile)(const fl_seq* s, int mr, int ms, int64_t t, int64_t r, int64_t p,
                           const float* const* xa, const float* const* ha) {
    V acc[FL_MR][FL_NV];
    fl_tile_acc(mr, ms, FL_CELL_XMASK, FL_CELL_HMASK, xa, ha, s->NI, s->H,
                s->wp + p * (s->NI + s->H) * FL_PW, s->bp + p * FL_PW, acc);
    FL_FN(epilogue)(s, mr, t, r, p, acc, ha);
}

#define FL_TILE_CASE(m) \
    case m: { if (ms) FL_FN(tile)(s, m, 1, t, r, p, xa, ha); \
              else FL_FN(tile)(s, m, 0, t, r, p, xa, ha); } break;

static void FL_FN(tile_rows)(const fl_seq* s, int mr, int ms, int64_t t, int64_t r, int64_t p,
                             const float* const* xa, const float* const* ha) {
    switch (mr) {
        FL_TILE_CASE(1)
        FL_TILE_CASE(2)
#if FL_MR > 2
        FL_TILE_CASE(3)
#endif
#if FL_MR > 3
        FL_TILE_CASE(4)
#endif
#if FL_MR > 4
        FL_TILE_CASE(5)
#endif
#if FL_MR > 5
        FL_TILE_CASE(6)
#endif
        default: break;
    }
}
#undef FL_TILE_CASE

/* One step: rows [r0, r1), panels [p0, p1). */
static void FL_FN(step)(const fl_seq* s, int64_t step, int64_t r0, int64_t r1, int64_t p0,
                        int64_t p1) {
    const int64_t U = FL_VW * FL_NV / FL_CELL_VECTORS;
    int64_t T = s->T, H = s->H;
    int64_t c0 = p0 * U, c1 = p1 * U < H ? p1 * U : H;
    const float* xa[FL_MR];
    const float* ha[FL_MR];
    int64_t t = s->reverse ? T - 1 - step : step;
    int64_t tp = s->reverse ? t + 1 : t - 1;   /* the step before, in running order */
    /* running rows are [r0, r0 + nact[t]) */
    int64_t n = r0 + s->nact[t], nprev = step == 0 ? r0 : r0 + s->nact[tp];
    int64_t hi = n < r1 ? n : r1;
    for (int64_t p = p0; p < p1; p++) {
        for (int64_t r = r0; r < hi; r += FL_MR) {
            int mr = (int)(hi - r < FL_MR ? hi - r : FL_MR);
            for (int i = 0; i < mr; i++) {
                int64_t row = r + i;
                xa[i] = fl_xrow(s, t, row);
                /* h_{t-1}: the row's previous output, or h0 where it starts */
                ha[i] = row < nprev ? fl_orow(s, tp, row) : s->h0 + row * H;
            }
            FL_FN(tile_rows)(s, mr, !s->exact, t, r, p, xa, ha);
        }
    }
    /* rows past their end output zeros (the packed layout stores none) */
    for (int64_t row = (n > r0 ? n : r0); row < r1 && !s->toff; row++) {
        memset(fl_orow(s, t, row) + c0, 0, (size_t)(c1 - c0) * sizeof(float));
    }
}

/* The gate gradients of row `row` at step w (over its activations, and
   aux), its bias sums added; the row's dG_h and dh for the product after. */
FL_INLINE void FL_FN(brow)(const fl_bseq* s, const fl_bwhere* w, int64_t row, double* db,
                           const float** a, float** out) {
    int64_t H = s->H, G = FL_CELL_GATES * H, AW = FL_CELL_AUX * H, at = w->base + row;
    float* g = s->dg + at * G;
    float* aux = FL_CELL_AUX ? s->aux + at * AW : NULL;
    const float* auxp = NULL;
    if (FL_CELL_AUX_PREV)
        auxp = row < w->nprev ? s->aux + (w->pbase + row) * AW : s->c0 + row * H;
    FL_FN(dg_row)(H, g, aux, auxp, s->dy + at * s->ldy, s->dh + row * H,
                  FL_CELL_STATES > 1 ? s->dc + row * H : NULL);
    /* the bias gradient, in double, while the row is in cache */
    double* dbr = s->dbrow ? db + (int64_t)s->dbrow[row] * G : db;
    for (int64_t j = 0; j < G; j++) dbr[j] += (double)g[j];
    *a = FL_CELL_DGH_AUX ? aux : g;
    *out = s->dh + row * H;
}

/* rows not running at step w contribute nothing to the weight gradients (the
   packed layout stores none) */
FL_INLINE void FL_FN(bidle)(const fl_bseq* s, const fl_bwhere* w, int64_t r0, int64_t r1) {
    int64_t G = FL_CELL_GATES * s->H, AW = FL_CELL_AUX * s->H;
    for (int64_t row = w->hi > r0 ? w->hi : r0; row < r1 && !s->toff; row++) {
        memset(s->dg + (w->base + row) * G, 0, (size_t)G * sizeof(float));
        if (FL_CELL_DGH_AUX) memset(s->aux + (w->base + row) * AW, 0, (size_t)AW * sizeof(float));
    }
}

/* One step of backward for rows [r0, r1): per row tile, its gate gradients,
   then dh_{t-1} = dG_h W_hh (+ the direct path the row left in dh). */
static void FL_FN(bstep)(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1, double* db) {
    fl_bwhere w = fl_bwhere_of(s, step, r0, r1);
    int64_t H = s->H, np = fl_backward_panels(H);
    const float* a[FL_MR];
    float* out[FL_MR];
    for (int64_t r = r0; r < w.hi; r += FL_MR) {
        int mr = (int)(w.hi - r < FL_MR ? w.hi - r : FL_MR);
        for (int i = 0; i < mr; i++) FL_FN(brow)(s, &w, r + i, db, &a[i], &out[i]);
        fl_btile_rows(mr, !s->exact, FL_CELL_DGH_AUX, a, FL_CELL_GATES * H, H, s->wp, out, 0,
                      np);
    }
    FL_FN(bidle)(s, &w, r0, r1);
}

/* bstep in two parts, for threads that split a step by hidden units: the
   gate gradients of every row (one thread), then the product over panels
   [p0, p1) of dh_{t-1} (any thread, once every row's gradients are in);
   together the bits of bstep. */
static void FL_FN(bstep_dg)(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1,
                            double* db) {
    fl_bwhere w = fl_bwhere_of(s, step, r0, r1);
    const float* a;
    float* out;
    for (int64_t row = r0; row < w.hi; row++) FL_FN(brow)(s, &w, row, db, &a, &out);
    FL_FN(bidle)(s, &w, r0, r1);
}

static void FL_FN(bstep_mm)(const fl_bseq* s, int64_t step, int64_t r0, int64_t r1,
                            int64_t p0, int64_t p1) {
    fl_bwhere w = fl_bwhere_of(s, step, r0, r1);
    int64_t H = s->H, G = FL_CELL_GATES * H, AW = FL_CELL_AUX * H;
    const float* a[FL_MR];
    float* out[FL_MR];
    for (int64_t r = r0; r < w.hi; r += FL_MR) {
        int mr = (int)(w.hi - r < FL_MR ? w.hi - r : FL_MR);
        for (int i = 0; i < mr; i++) {
            int64_t at = w.base + r + i;
            a[i] = FL_CELL_DGH_AUX ? s->aux + at * AW : s->dg + at * G;
            out[i] = s->dh + (r + i) * H;
        }
        fl_btile_rows(mr, !s->exact, FL_CELL_DGH_AUX, a, G, H, s->wp, out, p0, p1);
    }
}

static const fl_cell FL_FN(cell) = {
    FL_STR(FL_CELL), FL_CELL_GATES, FL_CELL_STATES, FL_CELL_AUX,
    FL_VW * FL_NV / FL_CELL_VECTORS, FL_FN(column), FL_FN(step), FL_FN(bstep),
    FL_FN(bstep_dg), FL_FN(bstep_mm),
};

#undef FL_FN
#undef FL_PASTE
#undef FL_PASTE_
#undef FL_STR
#undef FL_STR_
#undef FL_CELL
#undef FL_CELL_GATES
#undef FL_CELL_STATES
#undef FL_CELL_AUX
#undef FL_CELL_AUX_PREV
#undef FL_CELL_DGH_AUX
#undef FL_CELL_VECTORS
#undef FL_CELL_XMASK
#undef FL_CELL_HMASK
