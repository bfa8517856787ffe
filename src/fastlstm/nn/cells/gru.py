"""The GRU layer, PyTorch's ``nn.GRU`` (the reset gate applied after the recurrent product).

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

``b_hn`` stays apart from ``b_in`` (it is scaled by ``r``), so the recurrent
weights' n-block gradient is ``r * dn`` and ``bias_hh`` gets a gradient of
its own; ONNX's ``GRU`` with ``linear_before_reset=1`` and oneDNN's
``lbr_gru`` compute the same cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.nn.cells.spec import CellSpec
from fastlstm.nn.hidden_state import HiddenStateLayer
from fastlstm.nn.params import LAYER_PARAMETERS

SPEC = CellSpec(
    # float32 on the packed SIMD kernels (csrc/fl_cell_gru.h); float64 and the
    # portable build on the BLAS kernels (_kernels/_gru.pxi)
    name="gru", gates=3, states=("h",), kernel_code=2,
    # PyTorch's (r, z, n) as ONNX's (z, r, h)
    onnx_op="GRU", onnx_gate_order=(1, 0, 2), onnx_attrs={"linear_before_reset": 1},
    torch_class="GRU",
    folded_bias=(0, 1), hh_grads_apart=True,
    store_blocks=3,  # n_h and h_{t-1}, then the recurrent side's gate gradients
)


class GRU(HiddenStateLayer):
    """A multi-layer, optionally bidirectional GRU with PyTorch's parameters.

    The same layer API as :class:`fastlstm.LSTM` (lengths, initial state,
    dropout, threads, ``state_dict``, ``step``), with three gate blocks
    (r, z, n, in PyTorch's order) and no cell state; parameter names, shapes
    and the math are those of ``torch.nn.GRU``, so weights interchange.
    float32 runs on the packed SIMD kernels where the CPU has them, float64
    and the portable build on BLAS.

    Parameters
    ----------{LAYER_PARAMETERS}

    Examples
    --------
    >>> import numpy as np
    >>> import fastlstm
    >>> gru = fastlstm.GRU(3, 5, bidirectional=True, random_state=0)
    >>> x = np.random.default_rng(0).standard_normal((4, 7, 3))
    >>> out, h_n = gru.forward(x, lengths=[7, 3, 5, 1])
    >>> out.shape, h_n.shape
    ((4, 7, 10), (2, 4, 5))
    """

    spec = SPEC
    _step_kind = "gru"

    def _recur_forward(self, d, r0, rows, nact, gates, w_hh_t, bias_hh, carry, out, store,
                       block):
        H = self.hidden_size
        self._kernels.gru_forward_recurrent(gates, w_hh_t, bias_hh[2 * H:], carry[0], out,
                                            d * H, store, d == 1, r0, rows, nact, block)

    def _new_store(self, steps: int, batch: int) -> np.ndarray:
        # per step: W_hn h_{t-1} + b_hn and h_{t-1}; backward's recurrent gradients
        return np.empty((steps, batch, 3 * self.hidden_size), dtype=self.dtype)

    def _recur_backward(self, d, r0, rows, nact, gates, w_hh, store, initial, dy, dcarry,
                        d_bias, block):
        self._kernels.gru_backward_recurrent(gates, w_hh, store, dy, d * self.hidden_size,
                                             dcarry[0], d_bias, d == 1, r0, rows, nact, block)

    def _hh_grad_rows(self, store: Any) -> np.ndarray:
        return store


GRU.__doc__ = GRU.__doc__.replace("{LAYER_PARAMETERS}", LAYER_PARAMETERS)
