"""A fitted :class:`~fastlstm.SequenceScaler` in a model file: written, checked, restored.

The header holds its three parameters and its counts (``n_features_in_``,
``n_steps_seen_``, whether it was fitted on a 2D table, the input layout,
``feature_names_in_``); the arrays ``mean`` and ``scale`` hold its statistics
in float64.  Nothing is built before every value has been checked: the
parameters are booleans, the statistics are finite, the scales positive, and
they are zeros and ones where ``with_mean`` / ``with_std`` say so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.io.archive import _Reader
from fastlstm.io.checks import (
    _check,
    _check_bool,
    _check_int,
    _check_keys,
    _names,
    _scalar,
)

_PARAMS = ("with_mean", "with_std", "channels_first")
_STATE = ("n_features_in_", "n_steps_seen_", "table", "channels_first_fitted")


def _dump_scaler(scaler: Any, header: dict, arrays: dict[str, np.ndarray]) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(scaler, "scale_")
    params = scaler.get_params(deep=False)
    for name, value in params.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"cannot save SequenceScaler({name}={value!r}): {name} must be "
                            "a bool")
    header["params"] = {k: bool(v) for k, v in params.items()}
    state: dict[str, Any] = {
        "n_features_in_": _scalar(scaler.n_features_in_, "n_features_in_"),
        "n_steps_seen_": _scalar(scaler.n_steps_seen_, "n_steps_seen_"),
        "table": bool(scaler._table),
        "channels_first_fitted": bool(scaler._channels_first),
    }
    if hasattr(scaler, "feature_names_in_"):
        state["feature_names_in_"] = [_scalar(v, "feature_names_in_")
                                      for v in scaler.feature_names_in_]
    header["state"] = state
    arrays["mean"] = np.asarray(scaler.mean_, dtype=np.float64)
    arrays["scale"] = np.asarray(scaler.scale_, dtype=np.float64)


def _load_scaler(r: _Reader, cls: type) -> Any:
    raw = _check_keys(r.header["params"], _PARAMS, "the SequenceScaler's params")
    for name in _PARAMS:
        _check_bool(raw[name], f"parameter {name!r}")
    state = _check_keys(r.header["state"], _STATE, "the SequenceScaler's state",
                        optional=("feature_names_in_",))
    table = _check_bool(state["table"], "table")
    layout = _check_bool(state["channels_first_fitted"], "channels_first_fitted")
    _check(layout == raw["channels_first"],
           "the fitted layout does not match the channels_first parameter")
    declared = r.specs.get("mean")
    _check(declared is not None and len(declared[1]) == 1,
           f"the SequenceScaler needs 1D arrays ['mean', 'scale'], the file declares "
           f"{_names(r.specs)}")
    n = declared[1][0]
    _check(n >= 1, "the SequenceScaler's statistics are empty")
    r.expect({"mean": (np.float64, (n,)), "scale": (np.float64, (n,))})
    n_in = _check_int(state["n_features_in_"], "n_features_in_", 1)
    _check_int(state["n_steps_seen_"], "n_steps_seen_", 1)
    if table:
        _check(n == 1, "a SequenceScaler fitted on a 2D table has one feature per step")
    else:
        _check(n_in == n, f"n_features_in_={n_in} does not match the {n} statistics")
    names = state.get("feature_names_in_")
    if names is not None:
        _check(isinstance(names, list) and len(names) == n_in
               and all(isinstance(v, str) for v in names),
               "feature_names_in_ must be a list of n_features_in_ strings")
    mean, scale = r.array("mean"), r.array("scale")
    _check(np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all(),
           "the SequenceScaler's mean and scale must be finite, the scale positive")
    _check(raw["with_mean"] or not mean.any(), "with_mean=False needs a mean of zeros")
    _check(raw["with_std"] or (scale == 1).all(), "with_std=False needs a scale of ones")
    scaler = cls(**raw)
    scaler.mean_, scaler.scale_ = mean, scale
    scaler.n_features_in_ = n_in
    scaler.n_steps_seen_ = state["n_steps_seen_"]
    scaler._table = table
    scaler._channels_first = layout
    if names is not None:  # as scikit-learn sets it
        scaler.feature_names_in_ = np.asarray(names, dtype=object)
    return scaler
