/* Backpropagation through time on packed W_hh: the interface every
   instruction set implements (fl_backward_impl.h, compiled into
   fl_packed_<isa>.c) and the portable build stubs out.

   Per step and row tile: dG of the tile from the stored activations and the
   carried gradients (lane-wise, in registers: the cell's gate-gradient
   row), written over the activations (the weight gradients are products
   with dG after the loop), then dh_{t-1} = dG_h W_hh through the forward's
   register tile, K = G*H deep.  dG_h is dG, or for a cell whose recurrent
   gate gradients differ from the input side's (the GRU's r * da_n) its
   own, written over the aux store, and dh_{t-1} = dh z + dG_h W_hh.
   W_hh is packed into panels of output columns: panel p holds columns
   [p*PW, (p+1)*PW) of W_hh (PW = four vectors), K rows, zero past H. */
#ifndef FL_BACKWARD_H
#define FL_BACKWARD_H
#include <stdint.h>
#include "fl_gang.h"

typedef struct {
    int cell;                   /* the cell's code (fl_cells.h) */
    int reverse;                /* the direction ran t = T-1 ... 0 */
    int exact;                  /* as fl_seq.exact */
    int64_t T, B, H;
    float* dg;                  /* (T, B, G*H): activations in (fl_seq.acts), input-side dG
                                   out; rows not running at a step are zeroed */
    float* aux;                 /* (T, B, aux*H) the forward's fl_seq.aux, or NULL if the
                                   cell keeps none; the GRU's dG_h out (zeroed likewise) */
    const float* c0;            /* a cell with two states: (B, H) its initial second state */
    const float* dy;            /* dL/dh_t of row r at dy + (t*B + r)*ldy (H floats) */
    int64_t ldy;
    float* dh;                  /* (B, H) dL/dh carried: of the final state in, initial out */
    float* dc;                  /* LSTM: (B, H) likewise for c */
    const float* wp;            /* W_hh packed by fl_pack_backward */
    const int32_t* nact;        /* as fl_seq.nact */
    const int64_t* toff;        /* as fl_seq.toff: NULL (padded, t*B rows a step) or the
                                   packed-sequence layout of dg, aux and dy */
    const int32_t* dbrow;       /* NULL: every row's column sums of dG go to db; else row
                                   r's go to db + dbrow[r]*G (fixed chunks of rows keep
                                   their own bias sums, however the rows are split) */
} fl_bseq;

int64_t fl_backward_panels(int64_t H);
int64_t fl_backward_size(int cell, int64_t H);
void fl_pack_backward(int cell, int64_t H, const float* w_hh, float* wp);
/* Rows [r0, r1) of every step, in backward order; the column sums of dG
   (the bias gradient) are added to db (G*H doubles, or one such row per
   chunk when s->dbrow is set).  Each chunk's sums are added step by step,
   rows in increasing order, so they do not depend on how [r0, r1) is cut. */
void fl_bseq_run(const fl_bseq* s, int64_t r0, int64_t r1, double* db);
/* The same shared by the threads that call it with one gang, split by hidden
   units: each step is a ticket of every row's gate gradients (and bias
   sums), then tickets of gang->chunk panels of dh_{t-1} (fl_gang.h: any
   number of threads, one alone finishes); the bits of fl_bseq_run. */
void fl_bseq_run_gang(const fl_bseq* s, int64_t r0, int64_t r1, double* db, fl_gang* gang);
/* out (rows, H) = a (rows, K) W_hh for a W_hh packed by fl_pack_backward
   (K = G*H), in tiles of at most mr rows: for tests of the packing. */
void fl_backward_gemm(int cell, int64_t rows, int64_t mr, int64_t H, const float* a,
                      int64_t lda, const float* wp, float* out, int64_t ldout);
#endif
