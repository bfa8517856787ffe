"""The LSTM cell's layer: four gates (i, f, g, o) and a carried cell state."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.nn import step as _step
from fastlstm.nn.cells.spec import CellSpec
from fastlstm.nn.layer import RecurrentLayer
from fastlstm.nn.params import LAYER_PARAMETERS


def _open_forget_gates(params: Any, hidden_size: int) -> None:
    """Forget gates start mostly open (bias 1, as Keras' unit_forget_bias;
    Jozefowicz et al. 2015): long dependencies are learned much sooner."""
    h = hidden_size
    for name, p in params.items():
        if name.startswith("bias_ih"):
            p[h:2 * h] = 1.0
        elif name.startswith("bias_hh"):
            p[h:2 * h] = 0.0


SPEC = CellSpec(
    name="lstm", gates=4, states=("h", "c"), kernel_code=0,
    # PyTorch's (i, f, g, o) as ONNX's (i, o, f, c)
    onnx_op="LSTM", onnx_gate_order=(0, 3, 1, 2),
    torch_class="LSTM", estimator_init=_open_forget_gates,
    store_blocks=2,  # c_t and tanh(c_t) (the packed kernels keep both)
)


class LSTM(RecurrentLayer):
    """A multi-layer, optionally bidirectional LSTM with PyTorch's parameters.

    Parameters
    ----------{LAYER_PARAMETERS}

    Notes
    -----
    Gate order is i, f, g, o and parameters are named ``weight_ih_l{k}``,
    ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (``_reverse`` for
    the backward direction), so state dicts move to and from
    ``torch.nn.LSTM`` with no reshaping.

    Examples
    --------
    >>> import numpy as np
    >>> import fastlstm
    >>> layer = fastlstm.LSTM(3, 5, num_layers=2, random_state=0)
    >>> x = np.random.default_rng(0).standard_normal((4, 7, 3))
    >>> out, (h_n, c_n) = layer.forward(x)
    >>> out.shape, h_n.shape
    ((4, 7, 5), (2, 4, 5))
    """

    spec = SPEC
    _step_kind = "lstm"

    def _recur_forward(self, d, r0, rows, nact, gates, w_hh_t, bias_hh, carry, out, store,
                       block):
        self._kernels.forward_recurrent(gates, w_hh_t, carry[0], carry[1], out,
                                        d * self.hidden_size, store, d == 1, r0, rows, nact,
                                        block)

    def _new_store(self, steps: int, batch: int) -> np.ndarray:
        # the cell states c_t, which backward needs for tanh(c_t) and c_{t-1}
        return np.empty((steps, batch, self.hidden_size), dtype=self.dtype)

    def _recur_backward(self, d, r0, rows, nact, gates, w_hh, store, initial, dy, dcarry,
                        d_bias, block):
        c0 = initial[1]
        if c0 is None:
            c0 = np.zeros((gates.shape[1], self.hidden_size), dtype=self.dtype)
        self._kernels.backward_recurrent(gates, store, c0, w_hh, dy, d * self.hidden_size,
                                         dcarry[0], dcarry[1], d_bias, d == 1, r0, rows, nact,
                                         block)

    def forward(self, x: Any, lengths: Any = None, initial_state: Any = None,
                training: bool = False) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Run the layer over a batch of sequences.

        Parameters
        ----------
        x : array-like of shape (batch, time, input_size)
            Right-padded input sequences.
        lengths : array-like of int, shape (batch,), optional
            Valid steps of each sequence (1 to time); None means all.
            Outputs past a sequence's end are zero and its final state is the
            state at its own last step; the reverse direction starts there.
        initial_state : tuple (h0, c0), optional
            Each of shape (num_layers * num_directions, batch, hidden_size);
            zeros when omitted.
        training : bool, default=False
            Keep what :meth:`backward` needs and apply dropout.

        Returns
        -------
        out : ndarray of shape (batch, time, num_directions * hidden_size)
            Hidden states of the last layer at every step.
        (h_n, c_n) : tuple of ndarray, each (num_layers * num_directions, batch, hidden_size)
            Final hidden and cell states, indexed ``layer * num_directions + direction``.

        Examples
        --------
        >>> import numpy as np
        >>> layer = LSTM(2, 4, bidirectional=True, random_state=0)
        >>> x = np.ones((3, 5, 2))
        >>> out, (h_n, c_n) = layer.forward(x, lengths=[5, 2, 3])
        >>> out.shape, bool((out[1, 2:] == 0).all())
        ((3, 5, 8), True)
        """
        if initial_state is not None and (
                not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2):
            raise TypeError("initial_state must be a tuple (h0, c0)")
        out, (h_n, c_n) = self._forward(x, lengths, initial_state, training)
        return out, (h_n, c_n)

    # -------------------------------------------------------------- streaming
    @_step.stepping
    def step(self, x_t: Any, state: tuple[np.ndarray, np.ndarray] | None = None, *,
             out: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Advance the layer by one time step, for streaming inference.

        The same math as :meth:`forward`, one step at a time: feeding a
        sequence step by step gives ``forward``'s outputs and final state.
        The weights are prepared once per parameter version (packed for the
        SIMD kernels) and reused by every call, for any batch size and from
        any number of threads, each stepping states of its own.

        Parameters
        ----------
        x_t : array-like of shape (batch, input_size)
            The input at this step.
        state : tuple (h, c) or None
            The state returned by the previous call, each of shape
            (num_layers, batch, hidden_size); None starts from zeros.
        out : tuple (h, c) of ndarray, optional
            Arrays to write the new state into instead of allocating it:
            C-contiguous, writable, of the layer's dtype and shape
            (num_layers, batch, hidden_size).  They may be the ``state``
            passed in, which is then updated in place; otherwise they must
            not share memory with ``x_t`` or ``state``.  A bad ``out`` raises
            ValueError or TypeError before anything is written.

        Returns
        -------
        h_t : ndarray of shape (batch, hidden_size)
            The last layer's hidden state at this step (a view of the new
            state's ``h``).
        state : tuple (h, c)
            The new state, to pass to the next call: fresh arrays, or ``out``.
            The state passed in is modified only when it is ``out``.

        Examples
        --------
        >>> import numpy as np
        >>> layer = LSTM(2, 3, num_layers=2, random_state=0)
        >>> x = np.random.default_rng(0).standard_normal((1, 4, 2))
        >>> state = None
        >>> for t in range(4):
        ...     h_t, state = layer.step(x[:, t], state)
        >>> out, (h_n, c_n) = layer.forward(x)
        >>> bool(np.allclose(h_t, out[:, -1], atol=1e-6) and np.allclose(state[1], c_n, atol=1e-6))
        True

        Streaming into buffers of one's own, updated in place:

        >>> h, c = np.zeros((2, 1, 3)), np.zeros((2, 1, 3))
        >>> layer64 = LSTM(2, 3, num_layers=2, dtype="float64", random_state=0)
        >>> for t in range(4):
        ...     h_t, _ = layer64.step(x[:, t], (h, c), out=(h, c))
        >>> bool(np.allclose(h[-1], layer64.forward(x)[0][:, -1]))
        True
        """

    def backward(self, d_out: Any, d_h_n: Any = None, d_c_n: Any = None, *,
                 return_state_grads: bool = False, input_grad: bool = True):
        """Backpropagate through time from gradients of the last forward's outputs.

        Needs a preceding ``forward(..., training=True)``, whose stored
        activations it consumes (a second call needs a new forward).

        Parameters
        ----------
        d_out : array-like of shape (batch, time, num_directions * hidden_size) or None
            Gradient of the loss with respect to ``out``; None means zeros.
            Entries past a sequence's end are ignored.
        d_h_n, d_c_n : array-like, optional
            Gradients with respect to the final states ``h_n`` and ``c_n``.
        return_state_grads : bool, default=False
            Also return the gradients with respect to the initial state.
        input_grad : bool, default=True
            Compute ``dx``; False skips the first layer's input-gradient
            product and returns None for ``dx`` (for a caller that trains the
            layer on fixed inputs, as the estimators do).

        Returns
        -------
        grads : dict of str to ndarray
            Parameter gradients, with the keys and shapes of :meth:`state_dict`.
        dx : ndarray or None
            Gradient with respect to ``x``, shaped like ``x`` (zero past the ends);
            None with ``input_grad=False``.
        (dh0, dc0) : tuple of ndarray
            Only if ``return_state_grads``: gradients of the initial state.

        Examples
        --------
        >>> import numpy as np
        >>> layer = LSTM(2, 3, random_state=0)
        >>> x = np.ones((4, 6, 2))
        >>> out, _ = layer.forward(x, training=True)
        >>> grads, dx = layer.backward(np.ones_like(out))
        >>> grads["weight_hh_l0"].shape, dx.shape
        ((12, 3), (4, 6, 2))
        """
        grads, dx, (dh0, dc0) = self._backward(d_out, [d_h_n, d_c_n], input_grad)
        if return_state_grads:
            return grads, dx, (dh0, dc0)
        return grads, dx


LSTM.__doc__ = LSTM.__doc__.replace("{LAYER_PARAMETERS}", LAYER_PARAMETERS)
