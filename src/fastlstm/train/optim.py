"""Stochastic optimizers over a flat list of parameter arrays.

The optimizers know nothing about networks: they are built from the list of
parameter arrays (for shapes and dtypes only) and :meth:`step` updates the
arrays it is given in place from a list of gradients in the same order, as in
scikit-learn's ``_stochastic_optimizers.py``.  The parameters are passed to
every step rather than kept, so that an optimizer pickled with its model still
updates the model's live arrays after unpickling.

The update rules are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``, no
``amsgrad``, no dampening), so a model trained here and one trained with
PyTorch from the same weights take the same steps up to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastlstm import _kernels
from fastlstm.train.flat import FlatParameters

__all__ = ["SGD", "Adam", "AdamW", "clip_grad_norm", "make_optimizer"]


class _BaseOptimizer:
    """Common state: the learning rate and the step count.

    Parameters
    ----------
    learning_rate : float
        Step size.
    weight_decay : float
        L2 penalty coefficient (its meaning depends on the subclass).
    """

    def __init__(self, learning_rate: float, weight_decay: float = 0.0) -> None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.t = 0

    # Set by bind(): the FlatParameters, the state buffers' flat arrays and two
    # scratch buffers.  Not pickled (a pickle keeps the per-array buffers).
    _flat: tuple[FlatParameters, list[np.ndarray], list[np.ndarray]] | None = None

    def _buffers(self) -> list[list[np.ndarray]]:
        return []

    # Set by bind(): the kernel module whose ``adam_update`` runs a bound Adam
    # step in C (None: NumPy whole-buffer operations).  Not pickled either.
    _kernel: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_flat", None)
        state.pop("_kernel", None)
        return state

    def bind(self, flat: FlatParameters) -> bool:
        """Keep the state buffers in flat buffers laid out as ``flat``'s parameters.

        Afterwards :meth:`step` called with exactly ``flat.param_views`` and
        ``flat.grad_views`` (the same list objects) updates the flat buffers
        in a few whole-buffer operations, with the same result to the last
        bit as the per-array update; any other call takes the per-array way.
        The buffers keep their values (they become views of the flat ones).
        Returns False, changing nothing, if the buffers do not have the
        parameters' shapes and dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm.train.flat import FlatParameters
        >>> from fastlstm.train.optim import Adam
        >>> flat = FlatParameters([np.ones(3), np.ones((2, 2))])
        >>> opt = Adam(flat.param_views, learning_rate=0.5)
        >>> opt.bind(flat)
        True
        >>> flat.grads[:] = 1.0
        >>> opt.step(flat.param_views, flat.grad_views)
        >>> flat.param_views[0]
        array([0.5, 0.5, 0.5])
        """
        if self._flat is not None and self._flat[0] is flat:
            return True
        groups = self._buffers()
        layout = flat.layout
        if not all(layout.matches(bufs) for bufs in groups if bufs):
            return False
        arrays = []
        for bufs in groups:
            if not bufs:
                continue
            data, views = layout.zeros()
            for view, old in zip(views, bufs, strict=True):
                view[...] = old
            bufs[:] = views  # the same list objects: get_state/set_state see the views
            arrays.append(data)
        self._flat = (flat, arrays, [layout.zeros()[0], layout.zeros()[0]])
        try:
            kernel = _kernels.load()
        except (ImportError, ValueError):  # not built: the NumPy operations do it
            kernel = None
        self._kernel = kernel if hasattr(kernel, "adam_update") else None
        return True

    def _bound(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]
               ) -> tuple[FlatParameters, list[np.ndarray], list[np.ndarray]] | None:
        bound = self._flat
        if bound is not None and params is bound[0].param_views and grads is bound[0].grad_views:
            return bound
        return None

    def state_arrays(self) -> list[np.ndarray]:
        """The arrays :meth:`step` changes besides the parameters (and ``t``): for undo copies."""
        if self._flat is not None:
            return list(self._flat[1])
        return [b for bufs in self._buffers() for b in bufs]

    def get_state(self) -> dict:
        """Return a copy of the optimizer state (step count and moment buffers)."""
        return {"t": self.t, "buffers": [[b.copy() for b in bufs] for bufs in self._buffers()]}

    def set_state(self, state: dict) -> None:
        """Restore a state returned by :meth:`get_state` (copies into the buffers)."""
        self.t = state["t"]
        for bufs, saved in zip(self._buffers(), state["buffers"], strict=True):
            for b, s in zip(bufs, saved, strict=True):
                b[...] = s

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update ``params`` in place from ``grads`` (same order, same shapes)."""
        raise NotImplementedError


class SGD(_BaseOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With momentum ``mu``, velocity ``v`` and gradient ``g`` (plus
    ``weight_decay * p`` when ``weight_decay > 0``)::

        v <- mu * v + g          (v = g at the first step)
        p <- p - lr * v          (or p - lr * (g + mu * v) with nesterov)

    Parameters
    ----------
    params : sequence of ndarray
        The parameter arrays, used for the shapes and dtypes of the buffers.
    learning_rate : float, default=0.01
        Step size.
    momentum : float, default=0.9
        Momentum factor in ``[0, 1)``; 0 gives plain SGD.
    nesterov : bool, default=False
        Use Nesterov momentum.
    weight_decay : float, default=0.0
        L2 penalty added to the gradient (``g + weight_decay * p``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.optim import SGD
    >>> w = np.array([1.0, -2.0])
    >>> opt = SGD([w], learning_rate=0.1, momentum=0.0)
    >>> opt.step([w], [np.array([1.0, 1.0])])
    >>> w
    array([ 0.9, -2.1])
    """

    def __init__(
        self,
        params: Sequence[np.ndarray],
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(learning_rate, weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov momentum requires momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.velocities = [np.zeros_like(p) for p in params] if momentum > 0 else []

    def _buffers(self) -> list[list[np.ndarray]]:
        return [self.velocities]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update ``params`` in place from ``grads`` (same order, same shapes)."""
        lr, mu, wd = self.learning_rate, self.momentum, self.weight_decay
        first = self.t == 0
        self.t += 1
        bound = self._bound(params, grads)
        if bound is not None:
            # the per-array arithmetic below, on whole buffers, without temporaries
            flat, state, (s1, s2) = bound
            p, g = flat.params, flat.grads
            if wd:
                g = np.multiply(p, wd, out=s1)
                g += flat.grads
            if mu:
                v = state[0]
                if first:
                    v[...] = g
                else:
                    v *= mu
                    v += g
                if self.nesterov:
                    np.multiply(v, mu, out=s2)
                    s2 += g
                    g = s2
                else:
                    g = v
            np.multiply(g, lr, out=s2)
            p -= s2
            return
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if wd:
                g = g + wd * p
            if mu:
                v = self.velocities[i]
                if first:
                    v[...] = g
                else:
                    v *= mu
                    v += g
                g = g + mu * v if self.nesterov else v
            p -= lr * g


class Adam(_BaseOptimizer):
    """Adam (Kingma and Ba, 2015) with L2 weight decay added to the gradient.

    Parameters
    ----------
    params : sequence of ndarray
        The parameter arrays, used for the shapes and dtypes of the moments.
    learning_rate : float, default=0.001
        Step size.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the first and second moment estimates, in ``[0, 1)``.
    epsilon : float, default=1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default=0.0
        L2 penalty added to the gradient (``g + weight_decay * p``), as in
        ``torch.optim.Adam``; see :class:`AdamW` for the decoupled form.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.optim import Adam
    >>> w = np.array([1.0, -2.0])
    >>> opt = Adam([w], learning_rate=0.1)
    >>> opt.step([w], [np.array([3.0, -0.5])])  # the first step moves each by ~lr
    >>> w
    array([ 0.9, -1.9])
    """

    _decoupled = False
    # bound to flat buffers (bind), a step runs in C (fastlstm's kernels), bit for
    # bit as the NumPy whole-buffer operations it replaces; False: those operations
    _compiled = True

    def __init__(
        self,
        params: Sequence[np.ndarray],
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(learning_rate, weight_decay)
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def _buffers(self) -> list[list[np.ndarray]]:
        return [self.ms, self.vs]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update ``params`` in place from ``grads`` (same order, same shapes)."""
        self.t += 1
        lr, b1, b2, wd = self.learning_rate, self.beta_1, self.beta_2, self.weight_decay
        # p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), as PyTorch does
        step_size = lr / (1.0 - b1**self.t)
        bc2_sqrt = math.sqrt(1.0 - b2**self.t)
        bound = self._bound(params, grads)
        if bound is not None and self._kernel is not None and self._compiled:
            # the arithmetic below in one GIL-free pass, rounded as NumPy rounds it
            flat, (m, v), _ = bound
            self._kernel.adam_update(flat.params, flat.grads, m, v, lr, b1, b2, self.epsilon,
                                     wd, self._decoupled, self.t)
            return
        if bound is not None:
            # the per-array arithmetic below, on whole buffers, without temporaries
            # (a + b is b + a exactly in IEEE arithmetic: the results are identical)
            flat, (m, v), (s1, s2) = bound
            p, g = flat.params, flat.grads
            if wd and self._decoupled:
                p *= 1.0 - lr * wd
            elif wd:
                g = np.multiply(p, wd, out=s1)
                g += flat.grads
            m *= b1
            m += np.multiply(g, 1.0 - b1, out=s2)
            v *= b2
            s2 = np.multiply(g, g, out=s2)
            s2 *= 1.0 - b2
            v += s2
            denom = np.sqrt(v, out=s2)
            denom /= bc2_sqrt
            denom += self.epsilon
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom
            return
        for p, g, m, v in zip(params, grads, self.ms, self.vs, strict=True):
            if wd and self._decoupled:
                p *= 1.0 - lr * wd
            elif wd:
                g = g + wd * p
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= bc2_sqrt
            denom += self.epsilon
            p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019).

    Each step first shrinks every parameter, ``p <- p * (1 - lr * weight_decay)``,
    then takes the Adam step on the plain gradient, as ``torch.optim.AdamW``.

    Parameters
    ----------
    params : sequence of ndarray
        The parameter arrays, used for the shapes and dtypes of the moments.
    learning_rate : float, default=0.001
        Step size.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the first and second moment estimates, in ``[0, 1)``.
    epsilon : float, default=1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default=0.01
        Decoupled weight decay coefficient.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.optim import AdamW
    >>> w = np.array([1.0, -2.0])
    >>> opt = AdamW([w], learning_rate=0.1, weight_decay=0.5)
    >>> opt.step([w], [np.array([0.0, 0.0])])  # a zero gradient: decay only
    >>> w
    array([ 0.95, -1.9 ])
    """

    _decoupled = True

    def __init__(
        self,
        params: Sequence[np.ndarray],
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, learning_rate, beta_1, beta_2, epsilon, weight_decay)


def make_optimizer(
    name: str,
    params: Sequence[np.ndarray],
    *,
    learning_rate: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> _BaseOptimizer:
    """Build the optimizer called ``name`` (``"adam"``, ``"adamw"`` or ``"sgd"``).

    Parameters
    ----------
    name : {"adam", "adamw", "sgd"}
        Which optimizer.
    params : sequence of ndarray
        The parameter arrays.
    learning_rate : float
        Step size.
    weight_decay : float, default=0.0
        L2 penalty (coupled for "adam" and "sgd", decoupled for "adamw").
    momentum : float, default=0.9
        Momentum of "sgd" (ignored by the others).

    Returns
    -------
    optimizer : SGD, Adam or AdamW

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.optim import make_optimizer
    >>> type(make_optimizer("adamw", [np.zeros(3)], learning_rate=0.01)).__name__
    'AdamW'
    """
    if name == "adam":
        return Adam(params, learning_rate=learning_rate, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, learning_rate=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(params, learning_rate=learning_rate, momentum=momentum,
                   weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of 'adam', 'adamw', 'sgd'; got {name!r}")


def clip_grad_norm(grads: Sequence[np.ndarray], max_norm: float | None) -> float:
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``.

    The norm is taken over all arrays together (as ``torch.nn.utils.
    clip_grad_norm_``) and accumulated in float64.  Non-finite gradients are
    left untouched so that the caller can detect them from the returned norm.

    Parameters
    ----------
    grads : sequence of ndarray
        Gradient arrays, modified in place.
    max_norm : float or None
        Largest allowed global norm; None only computes the norm.

    Returns
    -------
    total_norm : float
        The global norm before clipping (``inf`` or ``nan`` if a gradient is
        not finite).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.optim import clip_grad_norm
    >>> g = [np.array([3.0]), np.array([4.0])]
    >>> clip_grad_norm(g, 1.0)
    5.0
    >>> round(float(g[0][0]), 4), round(float(g[1][0]), 4)
    (0.6, 0.8)
    """
    total = 0.0
    for g in grads:
        # a ufunc, not BLAS dot: a threaded BLAS call this small costs milliseconds
        # waking its threads, far more than the sum itself
        total += float(np.square(g, dtype=np.float64).sum())
    total_norm = math.sqrt(total) if total >= 0 else float("nan")
    if max_norm is not None and math.isfinite(total_norm) and total_norm > max_norm:
        scale = max_norm / (total_norm + 1e-6)
        for g in grads:
            g *= scale
    return total_norm
