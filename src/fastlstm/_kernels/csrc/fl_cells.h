/* The cells the packed kernels run, in the order of their codes (a cell's
   code is its place here; CellSpec.kernel_code in Python).  A cell is its
   one header, fl_cell_<name>.h (column map, gate epilogue on the register
   tile, gate-gradient row: see fl_cell_kernels.h), registered by its name
   in FL_CELLS and its include below. */
#ifndef FL_CELLS_H
#define FL_CELLS_H
#define FL_CELLS(X) X(lstm) X(rnn) X(gru)
#endif

/* compiling an instruction set's kernels: each cell's header instantiates
   the tile, step and backward step with its code inlined */
#if defined(FL_CELL_KERNELS) && !defined(FL_CELLS_INCLUDED)
#define FL_CELLS_INCLUDED
#include "fl_cell_lstm.h"
#include "fl_cell_rnn.h"
#include "fl_cell_gru.h"
#endif
