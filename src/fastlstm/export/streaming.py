"""Streaming predictions of a fitted estimator, one time step at a time.

The prediction "if the sequence ended now" of a unidirectional network is
the readout of the last layer's hidden state at this step, which is what
``predict`` reads at a sequence's last step; so stepping through a sequence
gives ``predict`` on each of its prefixes.  Every layer advances with its
own ``step`` (the LSTM's on a cached stepper; the h-only layers with a
one-step ``forward`` from the carried state).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.train.network import softmax

__all__ = ["predict_step"]


def _check_x_t(x_t: Any, n_features: int, name: str) -> np.ndarray:
    if hasattr(x_t, "detach"):
        x_t = x_t.detach().cpu().numpy()
    x = np.asarray(x_t)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x_t must hold real numbers, got dtype {x.dtype}")
    if x.ndim == 1 and n_features == 1:
        x = x[:, None]  # one value per sequence of a univariate model
    if x.ndim != 2 or x.shape[1] != n_features or x.shape[0] == 0:
        raise ValueError(
            f"x_t must have shape (n_samples >= 1, {n_features}): one time step of each "
            f"sequence, with the {n_features} features per step {name} was fitted on"
            + ("; or (n_samples,) for this univariate model" if n_features == 1 else "")
            + f"; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x_t contains NaN or infinity")
    return x


def predict_step(est: Any, x_t: Any, state: Any = None) -> tuple[np.ndarray, Any]:
    """One step of every sequence: (the prediction if the sequences ended now, new state)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "network_")
    name = type(est).__name__
    net = est.network_
    if net.config["bidirectional"]:
        raise ValueError(
            f"predict_step needs a unidirectional model: this {name} is bidirectional, and "
            "its backward direction reads each sequence from its end; use predict on the "
            "whole sequences")
    layer = net.layer
    x = _check_x_t(x_t, net.config["n_features"], name)
    if len(layer.spec.states) == 1 and state is not None:  # the state is h alone
        state = np.asarray(state)
        if state.ndim != 3 or state.shape[1] != x.shape[0]:
            raise ValueError(f"state must be the array predict_step returned, of shape "
                             f"({layer.num_layers}, {x.shape[0]}, {layer.hidden_size}); "
                             f"got {state.shape}")
    h_t, new_state = layer.step(x, state)
    y = h_t @ net.weight.T
    y += net.bias
    if est._kind == "classifier":
        return softmax(y), new_state
    y = y * est._y_scale + est._y_mean
    return (y[:, 0] if est._y_single else y), new_state
