"""Which kernel variant this CPU can run (0 = portable, 1 = AVX2+FMA, 2 = AVX-512)."""

cdef extern from "_platform.h":
    int fl_cpu_level() noexcept nogil


def cpu_level():
    """Return the highest instruction-set level the running CPU supports."""
    return fl_cpu_level()
