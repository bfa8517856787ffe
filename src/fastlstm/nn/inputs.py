"""Checks of what a layer's calls take besides ``forward``'s input: a step's input, ``d_out``."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_step_input(layer: Any, x_t: Any) -> np.ndarray:
    """``x_t`` of a layer's ``step`` as a C-contiguous (batch, input_size) array of
    the layer's dtype (no copy when it is one already); unidirectional layers only."""
    if layer.bidirectional:
        raise ValueError("step() runs forward in time; a bidirectional layer needs the "
                         "whole sequence, use forward()")
    dtype = layer.dtype
    if not (type(x_t) is np.ndarray and x_t.dtype == dtype and x_t.flags.c_contiguous):
        x_t = np.asarray(x_t)
        if x_t.dtype.kind not in "fiu":
            raise TypeError(f"x_t must hold real numbers, got dtype {x_t.dtype}")
        with np.errstate(over="ignore"):  # an overflow is reported as non-finite below
            x_t = np.ascontiguousarray(x_t, dtype=dtype)
    if x_t.ndim != 2 or x_t.shape[1] != layer.input_size or x_t.shape[0] == 0:
        raise ValueError(f"x_t must have shape (batch >= 1, input_size={layer.input_size}), "
                         f"got {x_t.shape}")
    return x_t


def check_d_out(layer: Any, d_out: Any, batch: int, steps: int) -> np.ndarray:
    """``d_out`` as an array of real numbers shaped as the output (values unchecked)."""
    d_out = np.asarray(d_out)
    if d_out.dtype.kind not in "fiu":
        raise TypeError(f"d_out must hold real numbers, got dtype {d_out.dtype}")
    shape = (batch, steps, layer.num_directions * layer.hidden_size)
    if d_out.shape != shape:
        raise ValueError(f"d_out must have the shape of out, {shape}, got {d_out.shape}")
    return d_out
