# Kernel variant "avx2": the shared source compiled with this level's flags (setup.py).
include "_lstm_impl.pxi"
