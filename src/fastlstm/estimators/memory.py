"""The memory guard of the estimators: refuse a fit or predict that cannot fit, before copying.

Counts an estimator's data, parameters with their training copies and one
mini-batch's forward (and backward) from the shapes alone, with the layer
estimates of :mod:`fastlstm.runtime.memory` and the cell's gate and state
counts from the registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.nn import registry
from fastlstm.runtime.memory import (
    _ARRAY_OVERHEAD,
    check_memory,
    forward_bytes,
    layer_param_count,
)
from fastlstm.train.panels import is_panel

__all__ = ["check_estimator_memory", "data_shape", "lstm_param_count"]

# Parameter-sized buffers of one training step, in units of the parameters:
# the weights, their gradients (the layer's and the flat buffer they are
# copied to), the epoch-start copy, the step guard's copy, the best weights of
# early stopping, the optimizer's two scratch buffers and the float64 squares
# of the gradient norm (two units in float32; see fastlstm.train.flat); optimizer
# buffers are added per optimizer (and once more for their step-guard copy).
_TRAINING_PARAM_COPIES = 10
_OPTIMIZER_BUFFERS = {"adam": 2, "adamw": 2, "sgd": 1}


def lstm_param_count(n_features: int, hidden_size: int, num_layers: int, directions: int,
                     gates: int, n_outputs: int) -> int:
    """Parameters of a recurrent stack and its linear readout.

    Examples
    --------
    >>> from fastlstm.estimators.memory import lstm_param_count
    >>> lstm_param_count(2, 3, 1, 1, 4, 1)  # 4*3*(2+3+2) + 1*3 + 1
    88
    """
    stack = layer_param_count(n_features, hidden_size, num_layers, directions, gates)
    return stack + n_outputs * directions * hidden_size + n_outputs


def data_shape(X: Any, channels_first: bool = False) -> tuple[int, int, int, int] | None:
    """(sequences, total steps, longest sequence, features) of estimator input, from shapes.

    ``channels_first`` reads arrays as ``(n_cases, n_channels, n_timepoints)``
    (lists as ``(n_channels, T_i)`` arrays), as the estimators do; a pandas
    ``(instance, time)`` panel is one sequence per instance.  None when the
    shape cannot be read without converting the data (then the validation
    that follows explains what is wrong).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.estimators.memory import data_shape
    >>> data_shape(np.zeros((4, 10, 3))), data_shape([np.zeros((2, 3)), np.zeros((5, 3))])
    ((4, 40, 10, 3), (2, 7, 5, 3))
    >>> data_shape(np.zeros((4, 3, 10)), channels_first=True)
    (4, 40, 10, 3)
    """
    time_axis, feature_axis = (1, 0) if channels_first else (0, 1)
    shape = getattr(X, "shape", None)
    try:
        if is_panel(X):
            counts = X.index.get_level_values(0).value_counts(sort=False)
            features = X.shape[1] if X.ndim == 2 else 1
            return len(counts), int(X.shape[0]), int(counts.max()), int(features)
        if shape is not None:
            shape = tuple(int(v) for v in shape)
            if len(shape) == 3:
                steps, features = shape[1 + time_axis], shape[1 + feature_axis]
                return shape[0], shape[0] * steps, steps, features
            if len(shape) == 2:
                return shape[0], shape[0] * shape[1], shape[1], 1
            return None
        if isinstance(X, (list, tuple)) and X:
            total, longest, features = 0, 0, 1
            for item in X:
                s = getattr(item, "shape", None)
                if s is None:
                    return None  # nested Python lists: small enough to convert
                s = tuple(int(v) for v in s)
                if len(s) == 1:
                    steps = s[0]
                elif len(s) == 2:
                    steps, features = s[time_axis], s[feature_axis]
                else:
                    return None
                total += steps
                longest = max(longest, steps)
            return len(X), total, longest, features
    except (TypeError, ValueError):
        return None
    return None


def check_estimator_memory(estimator: Any, X: Any, *, fitting: bool, n_outputs: int = 1
                           ) -> None:
    """Refuse an estimator's fit or predict whose buffers cannot fit, before copying ``X``.

    Counts the converted copy of ``X`` (twice with early stopping), the
    parameters with their gradients, optimizer buffers and safety copies
    (fit only), and one mini-batch's forward (and backward, when fitting).
    """
    layout = getattr(estimator, "_channels_first", None) if not fitting else None
    found = data_shape(X, bool(estimator.channels_first if layout is None else layout))
    if found is None:
        return
    n_samples, total_steps, longest, features = found
    if fitting:
        dtype = np.dtype(str(estimator.dtype))
        hidden, layers = estimator.hidden_size, estimator.num_layers
        directions = 2 if estimator.bidirectional else 1
        cls = registry.layer_class(estimator.cell)
        batch = estimator.batch_size
    else:
        net = estimator.network_
        dtype, hidden = net.dtype, net.config["hidden_size"]
        layers, directions = net.config["num_layers"], net.num_directions
        cls = type(net.layer)
        batch = 256  # at most, see _training.inference_batch_size
    s = dtype.itemsize
    batch = max(1, min(batch, n_samples))
    data = float(total_steps) * features * s * (2 if fitting and estimator.early_stopping else 1)
    params = lstm_param_count(features, hidden, layers, directions, cls._gates, n_outputs)
    copies = 1
    if fitting:
        opt = _OPTIMIZER_BUFFERS.get(estimator.optimizer, 2)
        copies = _TRAINING_PARAM_COPIES + 2 * opt

    class _Shape:  # the layer's sizes, without building a layer
        _gates, _states, _store_blocks = cls._gates, cls._states, cls._store_blocks
        input_size, hidden_size, num_layers = features, hidden, layers
        num_directions, dropout = directions, float(getattr(estimator, "dropout", 0.0))

    _Shape.dtype = dtype
    batch_bytes = forward_bytes(_Shape, batch, longest, training=fitting)
    arrays = 4.0 * directions * layers * _ARRAY_OVERHEAD  # the layer's arrays, once
    needed = data + float(params) * s * copies + arrays + batch_bytes
    action = "fit" if fitting else "predict"
    model = f"hidden_size={hidden}" + (f", num_layers={layers}" if layers > 1 else "")
    check_memory(needed, f"{type(estimator).__name__}.{action} on {n_samples:,} sequences of up "
                         f"to {longest:,} steps with {model}")
