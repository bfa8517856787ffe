"""A model's parameters and gradients as one flat buffer each, every array a view.

A training step touches every parameter four or five times after backward
(gradient norm, clipping, the optimizer update, the undo copy, the finite
check).  On a list of small arrays each of those is a Python loop of NumPy
calls; on one contiguous buffer it is one call.  :class:`FlatLayout` places
the arrays one after another (each block starting on a 64-byte boundary, the
gaps kept at zero), and :class:`FlatParameters` holds the parameter and
gradient buffers with their views.

The views are the model's live parameters (the network rebinds its arrays to
them once, :meth:`fastlstm.train.network.SequenceNet.bind_flat`), so the
per-array code that reads or writes parameters keeps working unchanged, and
an update of the flat buffer is an update of the model.  Elementwise
arithmetic on the flat buffer rounds exactly as on the separate arrays, so
results are bit for bit those of the per-array code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["FlatLayout", "FlatParameters", "flat_grad_norm"]

# Each block starts on a multiple of this many bytes (a cache line; the widest
# SIMD load), as a separately allocated array would be.
_ALIGN_BYTES = 64


class FlatLayout:
    """Where each of a list of arrays sits in one flat buffer.

    Parameters
    ----------
    shapes : sequence of tuple of int
        The arrays' shapes, in order.
    dtype : dtype
        The element type of the buffer.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.flat import FlatLayout
    >>> layout = FlatLayout([(2, 3), (5,)], np.float32)
    >>> layout.offsets, layout.size      # 64-byte blocks: 16 float32 each
    ([0, 16], 21)
    >>> flat, views = layout.zeros()
    >>> views[1][:] = 1.0
    >>> float(flat.sum()), views[0].shape
    (5.0, (2, 3))
    """

    def __init__(self, shapes: Sequence[tuple[int, ...]], dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.shapes = [tuple(int(n) for n in s) for s in shapes]
        step = max(1, _ALIGN_BYTES // self.dtype.itemsize)
        self.offsets: list[int] = []
        end = 0
        for shape in self.shapes:
            start = -(-end // step) * step
            self.offsets.append(start)
            end = start + math.prod(shape)
        self.size = end

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """The arrays as views into ``flat`` (C-contiguous, writable)."""
        return [flat[o:o + math.prod(s)].reshape(s)
                for o, s in zip(self.offsets, self.shapes, strict=True)]

    def zeros(self, dtype: np.dtype | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """A zeroed, 64-byte aligned flat buffer and its views."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        raw = np.zeros(self.size * dtype.itemsize + _ALIGN_BYTES, dtype=np.uint8)
        skip = -raw.ctypes.data % _ALIGN_BYTES
        flat = raw[skip:skip + self.size * dtype.itemsize].view(dtype)
        return flat, self.views(flat)

    def matches(self, arrays: Sequence[np.ndarray]) -> bool:
        """Whether ``arrays`` have this layout's shapes and dtype, in order."""
        return (len(arrays) == len(self.shapes)
                and all(a.shape == s and a.dtype == self.dtype
                        for a, s in zip(arrays, self.shapes, strict=True)))


class FlatParameters:
    """Flat parameter and gradient buffers of one model, with their views.

    Parameters
    ----------
    values : sequence of ndarray
        The current parameter values (copied in).

    Attributes
    ----------
    layout : FlatLayout
    params, grads : ndarray
        The flat buffers.
    param_views, grad_views : list of ndarray
        Views of the buffers, shaped as ``values``; ``param_views`` are meant
        to become the model's live parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.flat import FlatParameters
    >>> flat = FlatParameters([np.ones((2, 2)), np.zeros(3)])
    >>> flat.param_views[0] *= 3.0          # the views are the buffer
    >>> flat.params[:4].tolist()
    [3.0, 3.0, 3.0, 3.0]
    """

    def __init__(self, values: Sequence[np.ndarray]) -> None:
        dtype = values[0].dtype if values else np.dtype(np.float32)
        self.layout = FlatLayout([v.shape for v in values], dtype)
        self.params, self.param_views = self.layout.zeros()
        for view, value in zip(self.param_views, values, strict=True):
            view[...] = value
        self.grads, self.grad_views = self.layout.zeros()
        # float64 squares of the gradients, for the norm (see flat_grad_norm)
        self._squares, self._square_views = self.layout.zeros(np.float64)

    def is_live(self, arrays: Sequence[np.ndarray]) -> bool:
        """Whether ``arrays`` are exactly this object's parameter views."""
        return len(arrays) == len(self.param_views) and all(
            a is v for a, v in zip(arrays, self.param_views, strict=True))


def flat_grad_norm(flat: FlatParameters, max_norm: float | None) -> float:
    """:func:`fastlstm.train.optim.clip_grad_norm` on ``flat.grads``, bit for bit.

    The squares are taken in float64 in one call over the whole buffer; they
    are summed per parameter and the sums added in parameter order, exactly
    as the per-array function does, so the norm and the clipped gradients are
    the same to the last bit.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.flat import FlatParameters, flat_grad_norm
    >>> flat = FlatParameters([np.zeros(1), np.zeros(1)])
    >>> flat.grads[flat.layout.offsets] = [3.0, 4.0]
    >>> flat_grad_norm(flat, 1.0), [round(float(g[0]), 4) for g in flat.grad_views]
    (5.0, [0.6, 0.8])
    """
    np.square(flat.grads, out=flat._squares, dtype=np.float64)
    total = 0.0
    for s in flat._square_views:
        total += float(np.add.reduce(s, axis=None))  # = s.sum(), one frame less
    total_norm = math.sqrt(total) if total >= 0 else float("nan")
    if max_norm is not None and math.isfinite(total_norm) and total_norm > max_norm:
        flat.grads *= max_norm / (total_norm + 1e-6)
    return total_norm
