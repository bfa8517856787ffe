"""Scratch buffers a layer reuses from one training pass to the next.

A training forward and backward allocate tens of megabytes of activations
and gradients at the larger shapes.  Fresh allocations that size come from
the operating system as untouched pages, and touching them costs a page fault
every 4 KiB: on the virtual machines we measured, 3,900 faults (2.4 us each)
were 15% of a forward+backward of B=64, T=100, I=64, H=128.  A workspace
keeps those buffers and hands the same memory out again for the next pass
(same shape or smaller), so repeated passes touch warm pages.

Rules that keep it safe: a layer keeps one workspace per thread (like its
training tape), buffers are taken only after the input checks (so a refused
call never changes what a pending backward will read), every tag names one
use within a forward+backward, and arrays returned to the caller are never
workspace memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class Workspace:
    """Named scratch buffers, grown on demand and reused.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.runtime.workspace import Workspace
    >>> ws = Workspace()
    >>> a = ws.empty("acts", (4, 3), np.float32)
    >>> b = ws.empty("acts", (2, 3), np.float32)  # smaller: the same memory
    >>> bool(np.shares_memory(a, b)), b.shape, ws.nbytes
    (True, (2, 3), 48)
    """

    def __init__(self) -> None:
        self._buffers: dict[Any, np.ndarray] = {}

    def empty(self, tag: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialized C-contiguous array of ``shape``, the memory of ``tag``'s last use."""
        dtype = np.dtype(dtype)
        n = math.prod(shape)
        buf = self._buffers.get(tag)
        if buf is None or buf.dtype != dtype or buf.size < n:
            buf = np.empty(n, dtype=dtype)
            self._buffers[tag] = buf
        return buf[:n].reshape(shape)

    def zeros(self, tag: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """As :meth:`empty`, filled with zeros."""
        a = self.empty(tag, shape, dtype)
        a.fill(0)
        return a

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(b.nbytes for b in self._buffers.values())


def fresh(a: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """``a`` as an array of its own, copied if it may be (a view of) ``scratch``."""
    if np.may_share_memory(a, scratch):
        return np.array(a, order="C", copy=True)
    return np.ascontiguousarray(a)
