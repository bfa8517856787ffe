# The cell kernels compiled with the "base" instruction-set flags (setup.py).
include "_common.pxi"
include "_lstm.pxi"
include "_rnn.pxi"
include "_gru.pxi"
include "_packed.pxi"
include "_backward.pxi"
include "_step.pxi"
include "_train.pxi"
