"""The vanilla (Elman, tanh) RNN layer: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""

from __future__ import annotations

from fastlstm.nn.cells.spec import CellSpec
from fastlstm.nn.hidden_state import HiddenStateLayer
from fastlstm.nn.params import LAYER_PARAMETERS

SPEC = CellSpec(
    name="rnn", gates=1, states=("h",), kernel_code=1,
    onnx_op="RNN", onnx_gate_order=(0,),
    torch_class="RNN", torch_kwargs={"nonlinearity": "tanh"},
)


class RNN(HiddenStateLayer):
    """A multi-layer, optionally bidirectional tanh RNN with PyTorch's parameters.

    The same layer API as :class:`fastlstm.LSTM` (lengths, initial state,
    dropout, threads, ``state_dict``), with one gate block and no cell
    state; parameter names and shapes are those of ``torch.nn.RNN``
    (``nonlinearity="tanh"``). Mostly useful as the baseline that shows what
    the LSTM's gates buy on long gaps.

    Parameters
    ----------{LAYER_PARAMETERS}

    Examples
    --------
    >>> import numpy as np
    >>> import fastlstm
    >>> rnn = fastlstm.RNN(3, 5, bidirectional=True, random_state=0)
    >>> x = np.random.default_rng(0).standard_normal((4, 7, 3))
    >>> out, h_n = rnn.forward(x, lengths=[7, 3, 5, 1])
    >>> out.shape, h_n.shape
    ((4, 7, 10), (2, 4, 5))
    """

    spec = SPEC
    _step_kind = "rnn"

    def _recur_forward(self, d, r0, rows, nact, gates, w_hh_t, bias_hh, carry, out, store,
                       block):
        self._kernels.rnn_forward_recurrent(gates, w_hh_t, carry[0], out, d * self.hidden_size,
                                            d == 1, r0, rows, nact, block)

    def _recur_backward(self, d, r0, rows, nact, gates, w_hh, store, initial, dy, dcarry,
                        d_bias, block):
        self._kernels.rnn_backward_recurrent(gates, w_hh, dy, d * self.hidden_size, dcarry[0],
                                             d_bias, d == 1, r0, rows, nact, block)


RNN.__doc__ = RNN.__doc__.replace("{LAYER_PARAMETERS}", LAYER_PARAMETERS)
