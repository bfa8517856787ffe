"""Streaming predictions of a fitted estimator, one time step at a time.

The prediction "if the sequence ended now" of a unidirectional network is
the readout of the last layer's hidden state at this step, which is what
``predict`` reads at a sequence's last step; so stepping through a sequence
gives ``predict`` on each of its prefixes.  The layer advances with its
``step`` (on its stepper, cached per parameter version); what the readout
needs is gathered once per parameter version too (a regressor's readout
with its target scaling folded in), so a repeated call with arrays of the
model's dtype checks only a few shapes before the kernels run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


class _StreamPlan:
    """What an estimator's streaming step reads, gathered once per parameter version."""

    __slots__ = ("owner", "layer", "version", "weight", "bias", "n_features", "name",
                 "h_only", "classifier", "readout", "w_rows", "b_units", "y_single")

    def __init__(self, est: Any) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(est, "network_")
        name = type(est).__name__
        net = est.network_
        if net.config["bidirectional"]:
            raise ValueError(
                f"predict_step needs a unidirectional model: this {name} is bidirectional, "
                "and its backward direction reads each sequence from its end; use predict "
                "on the whole sequences")
        layer = net.layer
        self.owner, self.layer, self.version = est, layer, layer._version
        self.weight, self.bias = net.weight, net.bias
        self.n_features, self.name = net.config["n_features"], name
        self.h_only = len(layer.spec.states) == 1  # the state is h alone
        self.classifier = est._kind == "classifier"
        if self.classifier:
            # softmax(h W^T + b) in one call: the logits summed in float64, then
            # train.network's softmax
            self.readout = layer._kernels.readout_proba
            self.w_rows = np.ascontiguousarray(net.weight)
            self.b_units = np.ascontiguousarray(net.bias)
        else:
            # the readout and the target's scaling in one product and one sum, in
            # float64: (h W^T + b) * scale + mean = h (W^T * scale) + (b * scale + mean),
            # W^T * scale kept as rows, one per output
            scale, mean = est._y_scale, est._y_mean
            self.readout = layer._kernels.readout_values
            self.w_rows = np.ascontiguousarray(
                net.weight.astype(np.float64) * np.reshape(scale, (-1, 1)))
            self.b_units = np.ascontiguousarray(net.bias.astype(np.float64) * scale + mean)
            self.y_single = est._y_single


def _new_plan(est: Any) -> _StreamPlan:
    """A streaming plan for the estimator's current network, kept on the network
    (whose pickles never hold it)."""
    plan = _StreamPlan(est)
    est.network_._stream = plan
    return plan


def predict_step(est: Any, x_t: Any, state: Any = None, out: Any = None
                 ) -> tuple[np.ndarray, Any]:
    """One step of every sequence: (the prediction if the sequences ended now, new state)."""
    net = est.__dict__.get("network_")
    plan = None if net is None else net.__dict__.get("_stream")
    # valid while the network's layer, its parameter version and the readout arrays hold
    if (plan is None or plan.owner is not est or plan.layer is not net.layer
            or plan.version != plan.layer._version or plan.weight is not net.weight
            or plan.bias is not net.bias):
        plan = _new_plan(est)
    x = x_t
    if not (type(x) is np.ndarray and x.ndim == 2 and x.shape[1] == plan.n_features):
        x = _check_x_t(x_t, plan.n_features, plan.name)
    if plan.h_only and state is not None and not (
            type(state) is np.ndarray and state.ndim == 3 and state.shape[1] == x.shape[0]):
        layer = plan.layer
        state = np.asarray(state)
        if state.ndim != 3 or state.shape[1] != x.shape[0]:
            raise ValueError(f"state must be the array predict_step returned, of shape "
                             f"({layer.num_layers}, {x.shape[0]}, {layer.hidden_size}); "
                             f"got {state.shape}")
    h_t, new_state = plan.layer.step(x, state, out=out)
    if plan.classifier:
        return plan.readout(h_t, plan.w_rows, plan.b_units), new_state
    return plan.readout(h_t, plan.w_rows, plan.b_units, plan.y_single), new_state
