"""The loop over stacked layers and directions: one forward and one backward for every engine.

The padded driver (:mod:`fastlstm.nn.layer`), the packed-sequence layout
(:mod:`fastlstm.nn.ragged`) and the batch-first inference of the packed
kernels (:mod:`fastlstm.nn.packed`) run their layers through these two
loops.  An engine gives its one-layer step (all directions) and a layout:
how a dropout draw, an initial state and a final state map between the
user's row order and its own (``dropout_mask``, ``initial``, ``final``;
see ``_Plan`` and ``RaggedPlan``).  Dropout masks are drawn here, in the
padded shape, so every layout applies the same masks row for row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from fastlstm.nn.cache import _Cache
    from fastlstm.nn.layer import RecurrentLayer


def forward_stack(layer: RecurrentLayer, layer_in: np.ndarray, layout: Any, steps: int,
                  batch: int, init_all: list[np.ndarray] | None, training: bool,
                  forward_one: Callable[..., tuple[Any, ...]], cache: _Cache | None,
                  dtype: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run every layer of ``layer``: returns the last layer's output and the final states.

    ``forward_one(index, layer_in, inits)`` runs layer ``index`` (every
    direction) from ``inits[d][k]`` (state k of direction d, internal order,
    or None) and returns ``(out, carries, gates, stores)``; ``cache`` (or
    None) records what the backward needs.  The finals are
    ``(num_layers * num_directions, batch, hidden_size)`` per state, in user
    order.
    """
    dtype = np.dtype(dtype)
    H, D = layer.hidden_size, layer.num_directions
    states = len(layer._states)
    finals = [np.empty((D * layer.num_layers, batch, H), dtype=dtype) for _ in range(states)]
    for index in range(layer.num_layers):
        mask = None
        if index > 0 and training and layer.dropout > 0:
            keep = layer._rng.random((steps, batch, D * H)) >= layer.dropout
            mask = layout.dropout_mask(keep).astype(dtype)
            mask *= dtype.type(1.0 / (1.0 - layer.dropout))
            layer_in = layer_in * mask
        inits = [[None if a is None else layout.initial(a[index * D + d], dtype)
                  for a in (init_all or [None] * states)] for d in range(D)]
        out, carries, gates, stores = forward_one(index, layer_in, inits)
        for d in range(D):
            for k, carry in enumerate(carries[d]):
                finals[k][index * D + d] = layout.final(carry)
        if cache is not None:
            cache.keep(layer_in, mask, out, gates, stores, inits)
        layer_in = out
    return layer_in, finals


def backward_stack(layer: RecurrentLayer, cache: _Cache, dy: np.ndarray, layout: Any,
                   batch: int, backward_one: Callable[..., tuple[Any, ...]],
                   input_grad: bool, dtype: Any
                   ) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[np.ndarray]]:
    """Backpropagate every layer, last first: returns ``(grads, dx, d_initial)``.

    ``backward_one(index, dy, grads, input_grad)`` backpropagates layer
    ``index`` from the gradient of its output, adds its parameter gradients
    to ``grads`` and returns ``(dx, dcarries)`` (dx None without
    ``input_grad``; ``dcarries[d][k]`` internal order).  dx is in the
    layout's rows; d_initial per state in user order.
    """
    H, D = layer.hidden_size, layer.num_directions
    grads: dict[str, np.ndarray] = {}
    d_initial = [np.zeros((D * layer.num_layers, batch, H), dtype=dtype)
                 for _ in layer._states]
    for index in reversed(range(layer.num_layers)):
        dx, dcarries = backward_one(index, dy, grads, input_grad or index > 0)
        for d in range(D):
            for k, dcarry in enumerate(dcarries[d]):
                d_initial[k][index * D + d] = layout.final(dcarry)
        if cache.masks[index] is not None and dx is not None:
            dx *= cache.masks[index]
        dy = dx
    return {name: grads[name] for name in layer._params}, dy, d_initial
