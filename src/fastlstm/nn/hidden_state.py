"""Layers whose only recurrent state is h (the RNN, the GRU): forward, backward, step."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.nn import step as _step
from fastlstm.nn.layer import RecurrentLayer


class HiddenStateLayer(RecurrentLayer):
    """Base of the layers that carry h alone: ``forward`` returns ``(out, h_n)``."""

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
        >>> import fastlstm
        >>> rnn = fastlstm.RNN(2, 4, num_layers=2, random_state=0)
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
        >>> import fastlstm
        >>> rnn = fastlstm.RNN(2, 3, random_state=0)
        >>> out, h_n = rnn.forward(np.ones((4, 6, 2)), training=True)
        >>> grads, dx = rnn.backward(None, d_h_n=np.ones_like(h_n))
        >>> grads["weight_hh_l0"].shape, dx.shape
        ((3, 3), (4, 6, 2))
        """
        grads, dx, (dh0,) = self._backward(d_out, [d_h_n], input_grad)
        if return_state_grads:
            return grads, dx, dh0
        return grads, dx

    @_step.stepping
    def step(self, x_t: Any, state: np.ndarray | None = None, *,
             out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Advance the layer by one time step, for streaming inference.

        The same math as :meth:`forward`, one step at a time: feeding a
        sequence step by step gives ``forward``'s outputs and final state.
        The weights are prepared once per parameter version and reused by
        every call, for any batch size and from any number of threads, each
        stepping states of its own.

        Parameters
        ----------
        x_t : array-like of shape (batch, input_size)
            The input at this step.
        state : ndarray or None
            The state returned by the previous call, of shape
            (num_layers, batch, hidden_size); None starts from zeros.
        out : ndarray, optional
            An array to write the new state into instead of allocating it:
            C-contiguous, writable, of the layer's dtype and shape
            (num_layers, batch, hidden_size).  It may be the ``state`` passed
            in, which is then updated in place; otherwise it must not share
            memory with ``x_t`` or ``state``.  A bad ``out`` raises
            ValueError or TypeError before anything is written.

        Returns
        -------
        h_t : ndarray of shape (batch, hidden_size)
            The last layer's hidden state at this step (a view of the new state).
        state : ndarray of shape (num_layers, batch, hidden_size)
            The new state, to pass to the next call: a fresh array, or ``out``.

        Examples
        --------
        >>> import numpy as np
        >>> import fastlstm
        >>> rnn = fastlstm.RNN(2, 3, num_layers=2, random_state=0)
        >>> x = np.random.default_rng(0).standard_normal((1, 4, 2))
        >>> state = None
        >>> for t in range(4):
        ...     h_t, state = rnn.step(x[:, t], state)
        >>> out, h_n = rnn.forward(x)
        >>> bool(np.allclose(h_t, out[:, -1], atol=1e-6) and np.allclose(state, h_n, atol=1e-6))
        True
        """
