"""Streaming steps: one time step of a layer on a stepper cached per parameter version.

A layer's ``step`` runs on a compiled stepper (``fastlstm._kernels``
``Stepper``) built once per version of its parameters: the packed weights of
the SIMD kernels, or the arrays the BLAS kernels read.  The version is bumped
by everything that may change the parameters: ``load_state_dict``,
``named_parameters`` (which hands out the live arrays), the network's flat
binding and every optimizer step of fastlstm's trainer.  One stepper serves
every batch size and every thread: it holds nothing a step writes.

On the repeat path (arrays of the layer's dtype, C-contiguous, with the
shapes of the stepper) the checks are a few comparisons in C; anything else
goes through :func:`checked_step`, which converts the input and the state as
``step`` always did, with the same messages.  Results are those of the
step before steppers were cached, bit for bit (see ``_step.pxi``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from fastlstm.nn import packed as _packed
from fastlstm.nn.inputs import check_step_input
from fastlstm.nn.plan import MIN_CHUNK_ROWS, MIN_FLOPS_PER_THREAD, gemm_blocks
from fastlstm.runtime.parallel import blas_small_matrix_rows

__all__ = ["build", "checked_step", "step", "stepping"]


def step(layer: Any, x_t: Any, state: Any, out: Any) -> tuple[np.ndarray, Any]:
    """A layer's ``step``: the cached stepper on the repeat path, else checked and converted."""
    st = layer._stepper
    if st is None or st.version != layer._version:
        st = build(layer)
    result = st.run(x_t, state, out)
    if result is None:
        result = checked_step(layer, st, x_t, state, out)
    return result


def stepping(method: Callable[..., Any]) -> Callable[..., Any]:
    """A cell's ``step`` method: the signature and docstring of ``method``, the stepper's run.

    The method it returns takes the repeat path (the cached stepper, the
    arrays as they are) in its own frame, one Python call less than
    delegating to :func:`step`, and :func:`step` for everything else; the
    body of ``method`` is not run (it holds the documentation).
    """

    def step_method(self: Any, x_t: Any, state: Any = None, *, out: Any = None) -> Any:
        st = self._stepper
        if st is not None and st.version == self._version:
            result = st.run(x_t, state, out)
            if result is not None:
                return result
        return step(self, x_t, state, out)

    return functools.wraps(method)(step_method)


def build(layer: Any) -> Any:
    """The stepper for the layer's current parameters (stored on the layer)."""
    if layer.bidirectional:
        check_step_input(layer, None)  # raises: a bidirectional layer needs the whole sequence
    k = layer._kernels
    version = layer._version
    p, H, L = layer._params, layer.hidden_size, layer.num_layers
    names = [[f"{w}_l{i}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
             for i in range(L)]
    block, plain = 0, 0
    # every cell the packed kernels run steps on them (the forward's arithmetic)
    if _packed.uses_packed(layer):
        kind = k.STEP_PACKED
        arrays = []
        for w_ih, w_hh, b_ih, b_hh in names:
            arrays += [*k.pack(layer._cell_code, p[w_ih], p[w_hh], p[b_ih], p[b_hh]), None, None]
    elif layer._step_kind == "lstm":
        # its own step arithmetic on the live arrays (in-place edits are seen)
        kind = k.STEP_LSTM_BLAS
        arrays = [p[name] for group in names for name in group]
    else:
        # the forward's arithmetic over one step: W_hh^T for the step product and
        # the input projection's bias (derived copies: rebuilt with the version)
        kind = k._STEP_KINDS[layer._step_kind]
        arrays = []
        for w_ih, w_hh, b_ih, b_hh in names:
            b_hn = p[b_hh][2 * H:] if kind == k.STEP_GRU_BLAS else None
            arrays += [p[w_ih], np.ascontiguousarray(p[w_hh].T),
                       layer.spec.input_bias(p[b_ih], p[b_hh], H), b_hn]
        G = layer._gates * H
        block = blas_small_matrix_rows(G, H)
        plain = _plain_rows(layer, G)
    stepper = k.Stepper(kind, layer._cell_code if kind == k.STEP_PACKED else -1, arrays,
                        layer.input_size, H, layer.dtype, version, block, plain)
    layer._stepper = stepper
    return stepper


def _plain_rows(layer: Any, G: int) -> int:
    """The largest batch whose one-step forward is one task: one row chunk (fewer
    than two chunks' worth of rows) and one block of the input projection."""
    widest = max(layer.input_size, layer.hidden_size if layer.num_layers > 1 else 0)
    rows = 2 * MIN_CHUNK_ROWS - 1
    while rows > 0 and 2.0 * rows * G * widest >= 2 * MIN_FLOPS_PER_THREAD:
        rows -= 1
    return rows


def _one_task(layer: Any, batch: int) -> bool:
    """Whether the layer's one-step forward of ``batch`` rows runs as one task
    (the cuts depend on the shapes alone, never on the thread count)."""
    G = layer._gates * layer.hidden_size
    if len(layer._plan(batch, 1, None).shards) > 1:
        return False
    widths = [layer.input_size] + [layer.hidden_size] * (layer.num_layers - 1)
    return all(gemm_blocks(2.0 * batch * G * n) == 1 for n in widths)


def checked_step(layer: Any, stepper: Any, x_t: Any, state: Any, out: Any
                 ) -> tuple[np.ndarray, Any]:
    """``step`` for what the stepper does not take as it is: converted and checked."""
    x = check_step_input(layer, x_t)
    batch = x.shape[0]
    shape = (layer.num_layers, batch, layer.hidden_size)
    if state is not None:
        if len(layer._states) == 2:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError("state must be None or the (h, c) tuple step() returned")
            state = (_state_array(layer, "h", state[0], shape),
                     _state_array(layer, "c", state[1], shape))
        else:
            state = _state_array(layer, "h", state, shape)
    planned = False
    k = layer._kernels
    if batch > stepper.plain_rows and stepper.kind in (k.STEP_RNN_BLAS, k.STEP_GRU_BLAS):
        if not _one_task(layer, batch):
            return _forward_step(layer, x, state, out)
        planned = True
    result = stepper.run(x, state, out, planned)
    if result is None:  # cannot happen after the conversions above
        raise ValueError(f"x_t and state must be arrays of shapes ({batch}, "
                         f"{layer.input_size}) and {shape}")
    return result


def _state_array(layer: Any, name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A state array as the stepper takes it (cast and made contiguous only if needed)."""
    if type(value) is np.ndarray and value.dtype == layer.dtype and value.flags.c_contiguous:
        a = value
    else:
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        a = np.asarray(value)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"state {name} must hold real numbers, got dtype {a.dtype}")
        with np.errstate(over="ignore"):  # an overflow is reported as non-finite
            a = np.ascontiguousarray(a, dtype=layer.dtype)
    if a.shape != shape:
        raise ValueError(f"state {name} must have shape {shape}, got {a.shape}")
    return a


def _forward_step(layer: Any, x: np.ndarray, state: Any, out: Any) -> tuple[np.ndarray, Any]:
    """A batch the forward splits over threads: the forward over one step itself."""
    if out is not None:  # checked before anything runs
        _check_out(layer, out, x.shape[0])
    seq, h_n = layer.forward(x[:, None, :], initial_state=state)
    if out is None:
        return seq[:, 0], h_n
    np.copyto(out, h_n)
    return out[-1], out


def _check_out(layer: Any, out: Any, batch: int) -> None:
    shape = (layer.num_layers, batch, layer.hidden_size)
    if not (isinstance(out, np.ndarray) and out.dtype == layer.dtype and out.shape == shape
            and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out must hold C-contiguous, writable {layer.dtype} arrays of "
                         f"shape {shape} (num_layers, batch, hidden_size), as step() returns "
                         f"the state")
