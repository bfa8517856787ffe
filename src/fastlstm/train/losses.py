"""Regression losses besides squared error: absolute error and Huber.

Each takes predictions and targets of shape ``(n, k)`` or per step
``(n, T, k)``, with per-sequence weights and valid lengths as
:func:`fastlstm.train.network.squared_error` does, and returns the weighted mean
loss and its gradient with respect to the predictions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["absolute_error", "elementwise_loss", "huber", "step_weights"]


def step_weights(pred: np.ndarray, sample_weight: np.ndarray | None,
                 lengths: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Weights broadcastable against ``pred``, and their total over samples (or valid steps).

    For per-step outputs ``(n, T, k)`` each valid step carries its sequence's
    weight and steps at or past ``lengths[i]`` weigh 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.losses import step_weights
    >>> w_b, total = step_weights(np.zeros((2, 3, 1)), np.array([1.0, 2.0]), np.array([3, 1]))
    >>> w_b[:, :, 0].tolist(), total
    ([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]], 5.0)
    """
    n = pred.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if pred.ndim == 3:
        steps = pred.shape[1]
        if lengths is None:
            step_w = np.repeat(w[:, None], steps, axis=1)
        else:
            step_w = (np.arange(steps)[None, :] < np.asarray(lengths)[:, None]) * w[:, None]
        return step_w[:, :, None], float(np.add.reduce(step_w, axis=None))
    return w[:, None], float(np.add.reduce(w))  # the sum, without the method's wrapper frame


def elementwise_loss(
    pred: np.ndarray,
    target: np.ndarray,
    fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    sample_weight: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted mean of ``fn(pred - target)`` and its gradient.

    ``fn(diff) -> (loss, d_loss/d_diff)`` elementwise.  Each sequence (or,
    for ``(n, T, k)`` outputs, each valid step) counts with its weight; the
    mean is over weights and outputs, as :func:`~fastlstm.train.network.squared_error`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.losses import elementwise_loss
    >>> loss, grad = elementwise_loss(np.array([[3.0]]), np.array([[1.0]]),
    ...                               lambda d: (d * d, 2 * d))
    >>> loss, grad.ravel().tolist()
    (4.0, [4.0])
    """
    diff = np.asarray(pred, dtype=np.float64) - target
    k = pred.shape[-1]
    w_b, w_sum = step_weights(pred, sample_weight, lengths)
    if w_sum <= 0:
        return 0.0, np.zeros_like(pred)
    values, slopes = fn(diff)
    loss = float(np.add.reduce(values * w_b, axis=None) / (w_sum * k))
    grad = slopes * (w_b / (w_sum * k))
    return loss, grad.astype(pred.dtype, copy=False)


def absolute_error(pred: np.ndarray, target: np.ndarray,
                   sample_weight: np.ndarray | None = None,
                   lengths: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Weighted mean absolute error and its (sub)gradient (0 where the error is 0).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.losses import absolute_error
    >>> loss, grad = absolute_error(np.array([[1.0], [-2.0]]), np.zeros((2, 1)))
    >>> loss, grad.ravel().tolist()
    (1.5, [0.5, -0.5])
    """
    return elementwise_loss(pred, target, lambda d: (np.abs(d), np.sign(d)),
                            sample_weight, lengths)


def huber(pred: np.ndarray, target: np.ndarray, sample_weight: np.ndarray | None = None,
          lengths: np.ndarray | None = None, delta: float = 1.0) -> tuple[float, np.ndarray]:
    """Weighted mean Huber loss: ``d²/2`` for ``|d| <= delta``, else ``delta (|d| - delta/2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.losses import huber
    >>> loss, grad = huber(np.array([[0.5], [3.0]]), np.zeros((2, 1)))
    >>> loss, grad.ravel().tolist()   # (0.125 + 2.5) / 2; slopes 0.5 and 1, halved
    (1.3125, [0.25, 0.5])
    """
    def fn(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.abs(d)
        small = a <= delta
        return (np.where(small, 0.5 * d * d, delta * (a - 0.5 * delta)),
                np.clip(d, -delta, delta))

    return elementwise_loss(pred, target, fn, sample_weight, lengths)
