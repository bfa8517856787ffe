"""The vanilla (Elman, tanh) RNN layer: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.nn.cells.spec import CellSpec
from fastlstm.nn.layer import RecurrentLayer
from fastlstm.nn.params import LAYER_PARAMETERS

SPEC = CellSpec(
    name="rnn", gates=1, states=("h",), kernel_code=1,
    onnx_op="RNN", onnx_gate_order=(0,),
    torch_class="RNN", torch_kwargs={"nonlinearity": "tanh"},
)


class RNN(RecurrentLayer):
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
    _gates = SPEC.gates
    _cell_code = SPEC.kernel_code
    _states = SPEC.states

    def _recur_forward(self, d, r0, rows, nact, gates, w_hh_t, carry, out, store, block):
        self._kernels.rnn_forward_recurrent(gates, w_hh_t, carry[0], out, d * self.hidden_size,
                                            d == 1, r0, rows, nact, block)

    def _recur_backward(self, d, r0, rows, nact, gates, w_hh, store, initial, dy, dcarry,
                        d_bias, block):
        self._kernels.rnn_backward_recurrent(gates, w_hh, dy, d * self.hidden_size, dcarry[0],
                                             d_bias, d == 1, r0, rows, nact, block)

    def forward(self, x: Any, lengths: Any = None, initial_state: Any = None,
                training: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Run the layer over a batch of sequences.

        Parameters
        ----------
        x : array-like of shape (batch, time, input_size)
            Right-padded input sequences.
        lengths : array-like of int, shape (batch,), optional
            Valid steps of each sequence, as in :meth:`fastlstm.LSTM.forward`.
        initial_state : array-like, optional
            h0 of shape (num_layers * num_directions, batch, hidden_size).
        training : bool, default=False
            Keep what :meth:`backward` needs and apply dropout.

        Returns
        -------
        out : ndarray of shape (batch, time, num_directions * hidden_size)
            Hidden states of the last layer at every step (zero past each end).
        h_n : ndarray of shape (num_layers * num_directions, batch, hidden_size)
            Final hidden states, indexed ``layer * num_directions + direction``.

        Examples
        --------
        >>> import numpy as np
        >>> rnn = RNN(2, 4, num_layers=2, random_state=0)
        >>> out, h_n = rnn.forward(np.ones((3, 5, 2)))
        >>> bool(np.allclose(out[:, -1], h_n[-1]))
        True
        """
        initial = None if initial_state is None else [initial_state]
        out, (h_n,) = self._forward(x, lengths, initial, training)
        return out, h_n

    def backward(self, d_out: Any, d_h_n: Any = None, *, return_state_grads: bool = False,
                 input_grad: bool = True):
        """Backpropagate through time; see :meth:`fastlstm.LSTM.backward`.

        Parameters
        ----------
        d_out : array-like of shape (batch, time, num_directions * hidden_size) or None
            Gradient of the loss with respect to ``out``; None means zeros.
        d_h_n : array-like, optional
            Gradient with respect to the final state ``h_n``.
        return_state_grads : bool, default=False
            Also return the gradient with respect to h0.
        input_grad : bool, default=True
            Compute ``dx``; False skips the first layer's input-gradient
            product and returns None for ``dx`` (for a caller that trains the
            layer on fixed inputs).

        Returns
        -------
        grads : dict of str to ndarray
            Parameter gradients, keyed as :meth:`state_dict`.
        dx : ndarray or None
            Gradient with respect to ``x`` (None with ``input_grad=False``).
        dh0 : ndarray
            Only if ``return_state_grads``.

        Examples
        --------
        >>> import numpy as np
        >>> rnn = RNN(2, 3, random_state=0)
        >>> out, h_n = rnn.forward(np.ones((4, 6, 2)), training=True)
        >>> grads, dx = rnn.backward(None, d_h_n=np.ones_like(h_n))
        >>> grads["weight_hh_l0"].shape, dx.shape
        ((3, 3), (4, 6, 2))
        """
        grads, dx, (dh0,) = self._backward(d_out, [d_h_n], input_grad)
        if return_state_grads:
            return grads, dx, dh0
        return grads, dx


RNN.__doc__ = RNN.__doc__.replace("{LAYER_PARAMETERS}", LAYER_PARAMETERS)
