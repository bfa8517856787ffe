/* Packed-weight recurrent kernels: the interface every instruction set
   implements (fl_packed_avx2.c, fl_packed_avx512.c) and the portable build
   stubs out (fl_packed_none.c, width 0: the layer then uses BLAS).

   A cell's weights [W_ih | W_hh] are packed, once per forward, into panels
   of four vectors' worth of columns, K = NI + H rows deep, row-major inside
   a panel, so a register tile streams one panel from L1 for every tile of
   batch rows.  The cell decides which output column each lane holds (its
   column map, fl_cell_<name>.h), e.g.
     LSTM: panel p, vector v, lane l -> gate v of hidden unit p*VW + l
           (the four gates of VW units side by side, so the gate math is
           lane-wise on the accumulators);
     RNN:  panel p, vector v, lane l -> hidden unit (4p + v)*VW + l;
     GRU:  vectors r, z, n_x (W_in over x, zero over h), n_h (zero over x,
           W_hn over h) of units p*VW + l: the candidate's input and
           recurrent parts stay apart, as the reset gate scales only n_h.
   Columns past H are zero.  A cell is known by its code: its place in
   FL_CELLS (fl_cells.h). */
#ifndef FL_PACKED_H
#define FL_PACKED_H
#include <stdint.h>
#include "fl_gang.h"

#include "fl_cells.h"

typedef struct {
    int cell;
    int reverse;                /* run t = T-1 ... 0 */
    int exact;                  /* 1: every row the same arithmetic, whatever its tile (results
                                   invariant to row order and thread split); 0: short tiles
                                   may split k into streams, for speed at tiny batches */
    int64_t T, B, NI, H;         /* steps, rows of the whole batch, input size, hidden size */
    const float* x;             /* x_t of row r at x + t*xts + r*ldx (NI floats): time-major */
    int64_t ldx, xts;           /* (xts = B*ldx) or batch-first (ldx = T*xts) */
    const float* wp;            /* packed weights, fl_packed_size() floats */
    const float* bp;            /* packed b_ih + b_hh, fl_packed_bias_size() floats */
    const float* h0;            /* (B, H) initial hidden state */
    float* c;                   /* a cell with two states (LSTM): (B, ldc) second state (c),
                                   c0 in, final out; ldc >= panels*VW */
    int64_t ldc;
    float* out;                 /* h_t of row r at out + t*ots + r*ldo, zero past a row's end */
    int64_t ldo, ots;
    float* acts;                /* training or NULL: (T, B, G*H) the gate activations
                                   (LSTM [i, f, g, o]; RNN h_t; GRU [r, z, n]) */
    float* aux;                 /* training or NULL: (T, B, fl_cell_aux(cell)*H), what else the
                                   cell's backward reads (LSTM c_t; GRU [n_h, h_{t-1}, -]) */
    const int32_t* nact;        /* (T,): rows [r0, r0 + nact[t]) of the caller's range run at
                                   step t (rows sorted by decreasing length) */
    const int64_t* toff;        /* NULL, or the packed-sequence layout: step t's rows start at
                                   row toff[t] of x, out, acts and aux (row strides ldx, ldo;
                                   xts, ots unused) and only running rows are stored */
} fl_seq;

/* The cells: how many, and per code its name, gate blocks of H rows in W,
   states (1: h; 2: h and the c of fl_seq.c) and aux floats per row (in H). */
int fl_cell_count(void);
const char* fl_cell_name(int cell);
int fl_cell_gates(int cell);
int fl_cell_states(int cell);
int fl_cell_aux(int cell);
int64_t fl_packed_width(void);                       /* floats a vector, 0 if none */
int64_t fl_packed_tile_rows(void);                   /* rows of the register tile */
int64_t fl_packed_units(int cell);                   /* hidden units a panel covers */
int64_t fl_packed_panels(int cell, int64_t H);
int64_t fl_packed_size(int cell, int64_t NI, int64_t H);
int64_t fl_packed_bias_size(int cell, int64_t H);
void fl_pack(int cell, int64_t NI, int64_t H, const float* w_ih, const float* w_hh,
             const float* b_ih, const float* b_hh, float* wp, float* bp);
/* fl_pack of panels [p0, p1) only (their weights and biases): threads may
   pack disjoint ranges at once. */
void fl_pack_panels(int cell, int64_t NI, int64_t H, const float* w_ih, const float* w_hh,
                    const float* b_ih, const float* b_hh, float* wp, float* bp,
                    int64_t p0, int64_t p1);
/* Rows [r0, r1) and panels [p0, p1) of every step.  With a gang, the
   calling threads share the panels of each step (fl_gang.h: p0, p1 are
   ignored); without, the rows are this thread's alone. */
void fl_seq_run(const fl_seq* s, int64_t r0, int64_t r1, int64_t p0, int64_t p1,
                fl_gang* gang);
/* out (rows, 4*VW*panels) = [x | h] W_packed + b for one step, in tiles of
   at most mr rows, no gate math: the raw product, for tests of the tile and
   packing. */
void fl_packed_gemm(int cell, int64_t rows, int64_t mr, int64_t NI, int64_t H, const float* x, int64_t ldx,
                    const float* h, int64_t ldh, const float* wp, const float* bp,
                    float* out, int64_t ldout);
/* Vector exp-based sigmoid and tanh over n floats (for tests of their error). */
void fl_sigmoid_n(const float* x, float* y, int64_t n);
void fl_tanh_n(const float* x, float* y, int64_t n);
/* A register-only FMA loop: returns the floating-point operations done. */
double fl_fma_peak(int64_t iters);
#endif
