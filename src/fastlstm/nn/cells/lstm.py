"""The LSTM cell's layer: four gates (i, f, g, o) and a carried cell state."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.nn import packed as _packed
from fastlstm.nn.cells.spec import CellSpec
from fastlstm.nn.inputs import check_step_input
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
    store_blocks=1,  # c_t
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

    def __init__(self, input_size: int, hidden_size: int, **kwargs: Any) -> None:
        super().__init__(input_size, hidden_size, **kwargs)
        self._stepper = None  # built on first step() for one parameter version
        self._stepper_version = -1

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_stepper"] = None  # holds raw pointers; rebuilt on the next step()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._stepper = None  # never trust a pickled one: rebuilt on the next step()

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
    def step(self, x_t: Any, state: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Advance the layer by one time step, for streaming inference.

        The same math as :meth:`forward`, one step at a time: feeding a
        sequence step by step gives ``forward``'s outputs and final state.

        Parameters
        ----------
        x_t : array-like of shape (batch, input_size)
            The input at this step.
        state : tuple (h, c) or None
            The state returned by the previous call, each of shape
            (num_layers, batch, hidden_size); None starts from zeros.

        Returns
        -------
        h_t : ndarray of shape (batch, hidden_size)
            The last layer's hidden state at this step.
        state : tuple (h, c)
            The new state, to pass to the next call (fresh arrays; the state
            passed in is not modified).

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
        """
        x_t = check_step_input(self, x_t)
        dtype = self.dtype
        shape = (self.num_layers, x_t.shape[0], self.hidden_size)
        if state is None:
            h_in = c_in = np.zeros(shape, dtype)
        else:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError("state must be None or the (h, c) tuple step() returned")
            h_in = self._step_state("h", state[0], shape)
            c_in = self._step_state("c", state[1], shape)
        h = np.empty(shape, dtype)
        c = np.empty(shape, dtype)
        status = self._step_runner().step(x_t, h_in, c_in, h, c)
        if status == 1:
            raise ValueError(f"x_t contains NaN or infinity (or values too large for {dtype})")
        if status == 2:
            raise ValueError(f"state contains NaN or infinity (or values too large for {dtype})")
        return h[-1], (h, c)

    def _step_state(self, name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
        """A state array as the kernel takes it (cast and made contiguous only if needed)."""
        if type(value) is np.ndarray and value.dtype == self.dtype and value.flags.c_contiguous:
            a = value
        else:
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            a = np.asarray(value)
            if a.dtype.kind not in "fiu":
                raise TypeError(f"state {name} must hold real numbers, got dtype {a.dtype}")
            with np.errstate(over="ignore"):  # an overflow is reported as non-finite
                a = np.ascontiguousarray(a, dtype=self.dtype)
        if a.shape != shape:
            raise ValueError(f"state {name} must have shape {shape}, got {a.shape}")
        return a

    def _step_runner(self) -> Any:
        """The kernels' stepper for the current parameters, rebuilt when they change.

        The packed kernels work on a packed copy of the weights, made once per
        parameter version (``load_state_dict``, ``named_parameters`` and the
        optimizers bump it); the BLAS path reads the live arrays.
        """
        version = getattr(self, "_version", 0)
        if self._stepper is None or self._stepper_version != version:
            k = self._kernels
            if _packed.uses_packed(self):
                p = self._params
                packed = [k.pack(k.CELL_LSTM, p[f"weight_ih_l{i}"], p[f"weight_hh_l{i}"],
                                 p[f"bias_ih_l{i}"], p[f"bias_hh_l{i}"])
                          for i in range(self.num_layers)]
                self._stepper = k.PackedStepper(packed, self.input_size, self.hidden_size)
            else:
                self._stepper = k.StepRunner(list(self._params.values()), self.input_size,
                                             self.hidden_size)
            self._stepper_version = version
        return self._stepper

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
