"""An estimator's state in a model file: written, checked and restored.

Its parameters, fitted attributes, network, training state, generators and
(optionally) optimizer buffers; nothing is built before the whole header
and the shapes of every array have been checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm.io.archive import _Reader
from fastlstm.io.checks import (
    _INT_MAX,
    _check,
    _check_bool,
    _check_float,
    _check_int,
    _check_keys,
    _check_magnitude,
    _detail,
    _Invalid,
    _is_int,
    _names,
    _scalar,
    _short,
)
from fastlstm.io.layer_state import _check_layer_params, _check_layer_sizes, _layer_shapes
from fastlstm.io.rng_state import (
    _generator_json,
    _random_state_json,
    _set_generator,
    _set_random_state,
)
from fastlstm.nn import registry
from fastlstm.runtime.warn import warn_user

# layer files are the same in every version so far; estimator files changed in 2
_MIN_ESTIMATOR_VERSION = 2
# fitted attributes the estimators publish, saved when present
# (history_ is rebuilt from the train state's records, not stored twice)
_PUBLISHED = ("n_features_in_", "loss_curve_", "best_loss_", "n_iter_", "t_",
              "validation_scores_", "best_validation_score_", "validation_losses_",
              "feature_names_in_")
_ARCH = ("cell", "hidden_size", "num_layers", "bidirectional", "dtype", "channels_first")
# the keys of every history_ record (fastlstm.train.history.epoch_record)
_HISTORY_KEYS = ("epoch", "loss", "validation_loss", "validation_score", "learning_rate",
                 "seconds")
_NET_CONFIG = ("cell", "n_features", "n_outputs", "hidden_size", "num_layers", "bidirectional",
               "dropout", "dtype", "n_jobs", "sequence_output", "random_state")


def _encode_param(name: str, value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        return {"__dict__": [[_scalar(k, f"{name} key"), _scalar(v, f"{name}[{k!r}]")]
                             for k, v in value.items()]}
    if isinstance(value, np.random.RandomState):
        return {"__random_state__": _random_state_json(value, f"params.{name}", arrays)}
    return _scalar(value, name)


def _published(value: Any, name: str) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):  # feature_names_in_ is an array
        return [_scalar(v, name) for v in value]
    return _scalar(value, name)


def _history_record(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict) or sorted(record) != sorted(_HISTORY_KEYS):
        raise TypeError(f"cannot save the history_ record {record!r}: a record has the keys "
                        f"{list(_HISTORY_KEYS)}")
    return {k: _scalar(v, f"history_ {k!r}") for k, v in record.items()}


def _encode_params(est: Any, params: dict, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """The constructor parameters into the header, callbacks left out (with a warning)."""
    if params.get("callbacks"):
        warn_user(
            f"the callbacks of this {type(est).__name__} are not saved (they are Python "
            "objects, which a safe file cannot hold): the loaded model has callbacks=None; "
            "pass them again with set_params(callbacks=...) before training it further",
            UserWarning)
    params["callbacks"] = None
    header["params"] = {k: _encode_param(k, v, arrays) for k, v in params.items()}


def _dump_estimator(est: Any, header: dict, arrays: dict[str, np.ndarray],
                    include_optimizer: bool) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "network_")
    params = est.get_params(deep=False)
    _encode_params(est, params, header, arrays)
    net = est.network_
    ts = est._state
    state: dict[str, Any] = {
        "published": {k: _published(getattr(est, k), k) for k in _PUBLISHED if hasattr(est, k)},
        "table_steps": est._table_steps,
        "architecture": {k: _scalar(v, k) for k, v in est._architecture.items()},
        "network": {k: _scalar(v, k) for k, v in net.config.items()},
        "train_state": {
            "loss_curve": list(ts.loss_curve), "validation_scores": list(ts.validation_scores),
            "validation_losses": [_scalar(v, "validation_losses") for v in ts.validation_losses],
            "history": [_history_record(r) for r in ts.history],
            "best_loss": ts.best_loss, "best_validation_score": ts.best_validation_score,
            "no_improvement_count": ts.no_improvement_count, "n_iter": ts.n_iter, "t": ts.t,
        },
        "rng": _random_state_json(est._rng, "rng.keys", arrays),
        "layer_rng": _generator_json(getattr(net.layer, "_rng", None)),
        "optimizer": None,
        # whether fit saw sequences of different lengths: to_onnx's default
        "variable_lengths": bool(getattr(est, "_fit_variable_lengths", False)),
    }
    for name, value in net.layer.state_dict().items():
        arrays[f"layer.{name}"] = value
    arrays["head.weight"] = net.weight
    arrays["head.bias"] = net.bias
    if include_optimizer and getattr(est, "_optimizer", None) is not None:
        opt = est._optimizer.get_state()
        state["optimizer"] = {"name": est._optimizer_name, "t": int(opt["t"]),
                              "groups": len(opt["buffers"])}
        for g, group in enumerate(opt["buffers"]):
            for i, buf in enumerate(group):
                arrays[f"optimizer.{g}.{i}"] = buf
    if est._kind == "classifier":
        classes = np.asarray(est.classes_)
        state["classes_object"] = classes.dtype == object
        if state["classes_object"]:
            # labels from e.g. a pandas column: stored as numbers or strings, and
            # given back as an object array of the same Python values
            plain = np.asarray(classes.tolist())
            if plain.dtype.kind in "biufUS" and plain.shape == classes.shape and all(
                    type(a) is type(b) for a, b in zip(plain.astype(object), classes, strict=True)):
                classes = plain
        if classes.dtype.kind not in "biufUS":
            raise TypeError(
                f"cannot save classes_ {est.classes_!r}: the file stores labels as numbers "
                "or strings of one type, never pickled objects; refit with such labels "
                "(e.g. y.astype(str))")
        arrays["classes"] = classes
    else:
        state["y_single"] = bool(est._y_single)
        state["fitted_sequence_output"] = bool(est._fitted_sequence_output)
        arrays["y_mean"] = np.asarray(est._y_mean, dtype=np.float64)
        arrays["y_scale"] = np.asarray(est._y_scale, dtype=np.float64)
    header["state"] = state


def _decode_param(name: str, value: Any, arrays: dict) -> Any:
    if isinstance(value, dict):
        if list(value) == ["__dict__"] and isinstance(value["__dict__"], list):
            items = value["__dict__"]
            _check(all(isinstance(i, list) and len(i) == 2 and all(
                v is None or isinstance(v, (bool, int, float, str)) for v in i) for i in items),
                   f"parameter {name!r} is not a list of [key, value] pairs of scalars")
            for pair in items:
                for v in pair:
                    _check_magnitude(v, f"parameter {name!r}")
            return dict(items)
        if list(value) == ["__random_state__"]:
            rs = np.random.RandomState()
            _set_random_state(rs, value["__random_state__"], arrays.get(f"params.{name}"),
                              f"parameter {name!r}")
            return rs
        raise _Invalid(f"parameter {name!r} holds an unknown object {_names(value)}")
    _check(value is None or isinstance(value, (bool, int, float, str)),
           f"parameter {name!r} must be a JSON scalar, got {type(value).__name__}")
    _check_magnitude(value, f"parameter {name!r}")
    return value


def _check_network(net: dict, kind: str) -> None:
    _check_keys(net, _NET_CONFIG, "the network configuration")
    _check(isinstance(net["cell"], str) and net["cell"] in registry.names(),
           f"unknown cell {_short(net['cell'])}")
    _check_layer_params({"input_size": net["n_features"], **net}, "network")
    _check_int(net["n_outputs"], "n_outputs", 1)
    _check_bool(net["sequence_output"], "sequence_output")
    _check_int(net["random_state"], "the network's random_state")
    _check(kind == "regressor" or not net["sequence_output"],
           "a classifier cannot have sequence_output")


_ESTIMATOR_STATE = ("published", "table_steps", "architecture", "network", "train_state", "rng",
                    "layer_rng", "optimizer")
_TRAIN_STATE = ("loss_curve", "validation_scores", "validation_losses", "history", "best_loss",
                "best_validation_score", "no_improvement_count", "n_iter", "t")


def _check_history(records: Any) -> None:
    _check(isinstance(records, list), "the history must be a list")
    for i, record in enumerate(records):
        what = f"history record {i}"
        _check_keys(record, _HISTORY_KEYS, what)
        _check_int(record["epoch"], f"{what}: epoch", 1)
        for key, value in record.items():
            _check_float(value, f"{what}: {key}")


def _check_estimator_state(state: dict, kind: str) -> None:
    """Check the non-array state of an estimator (nothing is built yet)."""
    net = state["network"]
    _check_network(net, kind)
    _check_bool(state.get("variable_lengths", False), "variable_lengths")
    arch = _check_keys(state["architecture"], _ARCH, "architecture")
    _check(all(arch[a] == net[a] for a in _ARCH if a in net),
           "architecture does not match the network")
    _check_bool(arch["channels_first"], "channels_first")
    steps = state["table_steps"]
    _check(steps is None or _is_int(steps) and 1 <= steps <= _INT_MAX,
           "table_steps must be null or a positive int")
    ts = _check_keys(state["train_state"], _TRAIN_STATE, "train_state")
    _check_history(ts["history"])
    for name in ("loss_curve", "validation_scores", "validation_losses"):
        _check(isinstance(ts[name], list), f"{name} must be a list")
        for v in ts[name]:
            _check_float(v, name)
    for name in ("best_loss", "best_validation_score"):
        _check_float(ts[name], name)
    for name in ("no_improvement_count", "n_iter", "t"):
        _check_int(ts[name], name)
    opt = state["optimizer"]
    if opt is not None:
        _check_keys(opt, ("name", "t", "groups"), "the optimizer state")
        _check(opt["name"] in ("adam", "adamw", "sgd"),
               f"unknown optimizer {_short(opt['name'])}")
        _check_int(opt["t"], "the optimizer step count")
        _check(_is_int(opt["groups"]) and 0 <= opt["groups"] <= 2,
               "malformed optimizer groups")
    published = state["published"]
    _check(isinstance(published, dict), "the fitted attributes must be a JSON object")
    _check(set(published) <= set(_PUBLISHED),
           f"unknown fitted attributes {_names(set(published) - set(_PUBLISHED))}")
    _check("n_features_in_" in published, "n_features_in_ is missing")
    for name, value in published.items():
        if name in ("n_features_in_", "n_iter_", "t_"):
            _check_int(value, name, 1 if name == "n_features_in_" else 0)
        elif name == "feature_names_in_":
            _check(isinstance(value, list) and all(isinstance(v, str) for v in value)
                   and len(value) == published["n_features_in_"],
                   "feature_names_in_ must be a list of n_features_in_ strings")
        else:
            for v in value if isinstance(value, list) else [value]:
                _check_float(v, name)
    if steps is None:
        _check(published["n_features_in_"] == net["n_features"],
               "n_features_in_ does not match the network")
    else:
        _check(net["n_features"] == 1 and published["n_features_in_"] == steps,
               "a model fitted on a 2D table must have one feature per step")
    if kind == "regressor":
        _check_bool(state.get("y_single"), "y_single")
        _check(not state["y_single"] or net["n_outputs"] == 1, "y_single needs one output")
        _check(state.get("fitted_sequence_output") == net["sequence_output"],
               "fitted_sequence_output does not match the network")
    else:
        _check_bool(state.get("classes_object"), "classes_object")


def _estimator_arrays(state: dict, kind: str, random_state_params: list[str]
                      ) -> tuple[dict[str, tuple[Any, tuple[int, ...]]], list[tuple[int, ...]]]:
    """Every array an estimator needs (name: (dtype, shape)), and its parameters' shapes."""
    net = state["network"]
    dtype, k = net["dtype"], net["n_outputs"]
    d = 2 if net["bidirectional"] else 1
    layer_shapes = _layer_shapes(net["cell"], net["n_features"], net["hidden_size"],
                                 net["num_layers"], net["bidirectional"])
    expected: dict[str, tuple[Any, tuple[int, ...]]] = {
        f"layer.{n}": (dtype, s) for n, s in layer_shapes.items()}
    expected["head.weight"] = (dtype, (k, d * net["hidden_size"]))
    expected["head.bias"] = (dtype, (k,))
    # in the order of network.parameters(), which the optimizer's buffers follow
    param_shapes = [s for _, s in expected.values()]
    expected["rng.keys"] = (np.uint32, (624,))
    for name in random_state_params:
        expected[f"params.{name}"] = (np.uint32, (624,))
    opt = state["optimizer"]
    for g in range(opt["groups"] if opt is not None else 0):
        for i, s in enumerate(param_shapes):
            expected[f"optimizer.{g}.{i}"] = (dtype, s)
    if kind == "classifier":
        expected["classes"] = (None, (k,))
    else:
        expected["y_mean"] = (np.float64, (k,))
        expected["y_scale"] = (np.float64, (k,))
    return expected, param_shapes


def _restore_optimizer(est: Any, opt: dict | None, arrays: dict, n_params: int) -> None:
    from fastlstm.train.optim import make_optimizer

    est._optimizer = None
    est._optimizer_name = est.optimizer
    if opt is None:
        return
    optimizer = make_optimizer(opt["name"], est.network_.parameters(),
                               learning_rate=est.learning_rate,
                               weight_decay=est.weight_decay, momentum=est.momentum)
    groups = optimizer.get_state()["buffers"]
    _check(len(groups) == opt["groups"],
           f"the optimizer state has {opt['groups']} buffer groups, {opt['name']!r} with "
           f"these parameters has {len(groups)}")
    optimizer.set_state({"t": opt["t"], "buffers": [
        [arrays[f"optimizer.{g}.{i}"] for i in range(n_params)] for g in range(opt["groups"])]})
    est._optimizer = optimizer
    est._optimizer_name = opt["name"]


def _load_estimator(r: _Reader, cls: type) -> Any:
    from fastlstm.train.history import History
    from fastlstm.train.network import SequenceNet, TrainState

    _check(r.version >= _MIN_ESTIMATOR_VERSION,
           f"the file has format version {r.version}: estimator files older than format "
           f"version {_MIN_ESTIMATOR_VERSION} (which predate channels_first and history_) "
           "are not read; refit the model and save it again")
    raw = r.header["params"]
    _check(isinstance(raw, dict), "params must be a JSON object")
    est = cls()
    known = set(est.get_params(deep=False))
    _check(set(raw) == known, f"params do not match {cls.__name__}: missing "
           f"{_names(known - set(raw))}, unexpected {_names(set(raw) - known)}")
    _check(raw["callbacks"] is None, "callbacks must be null: callbacks are never saved")
    kind = est._kind
    state = _check_keys(r.header["state"], _ESTIMATOR_STATE, "state",
                        optional=("y_single", "fitted_sequence_output", "classes_object",
                                  "variable_lengths"))
    _check_estimator_state(state, kind)
    net = state["network"]
    _check_layer_sizes(r, "the network's", net["n_features"], net["hidden_size"],
                       net["num_layers"], net["bidirectional"], input_name="n_features")
    _check(net["n_outputs"] <= r.largest_dimension("head."),
           f"the network's n_outputs={net['n_outputs']} is larger than every dimension of "
           f"the file's head arrays (at most {r.largest_dimension('head.')})")
    # a RandomState instance as random_state: its key array travels with the others
    rs_params = [n for n, v in raw.items() if isinstance(v, dict) and "__random_state__" in v]
    expected, param_shapes = _estimator_arrays(state, kind, rs_params)
    r.expect(expected)

    # everything declared is checked: read, then build
    arrays = {name: r.array(name) for name in expected}
    for name, value in arrays.items():
        if name.startswith(("layer.", "head.", "optimizer.")):
            _check(np.isfinite(value).all(), f"array {name!r} contains NaN or infinity")
    params = {n: _decode_param(n, v, arrays) for n, v in raw.items()}
    try:
        est.set_params(**params)
        est._check_params()
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Invalid(f"invalid {cls.__name__} parameters ({_detail(exc)})") from None
    network = SequenceNet.__new__(SequenceNet)
    try:
        network.__setstate__({
            "config": dict(net),
            "layer_state": {n[len("layer."):]: a for n, a in arrays.items()
                            if n.startswith("layer.")},
            "weight": arrays["head.weight"], "bias": arrays["head.bias"],
        })
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Invalid(f"invalid network ({_detail(exc)})") from None
    _set_generator(network.layer, state["layer_rng"])
    est.network_ = network

    est._architecture = dict(state["architecture"])
    est._channels_first = est._architecture["channels_first"]  # the layout predict reads
    est._table_steps = state["table_steps"]
    ts = state["train_state"]
    history = [{k: v if k == "epoch" else float(v) for k, v in record.items()}
               for record in ts["history"]]
    est._state = TrainState(**{**ts, "loss_curve": [float(v) for v in ts["loss_curve"]],
                               "validation_scores": [float(v) for v in ts["validation_scores"]],
                               "validation_losses": [float(v) for v in ts["validation_losses"]],
                               "history": history,
                               "best_loss": float(ts["best_loss"]),
                               "best_validation_score": float(ts["best_validation_score"])})
    est.history_ = History(history)
    est._rng = np.random.RandomState()
    _set_random_state(est._rng, state["rng"], arrays["rng.keys"], "the estimator's generator")
    _restore_optimizer(est, state["optimizer"], arrays, len(param_shapes))
    for name, value in state["published"].items():
        if name == "feature_names_in_":  # as scikit-learn sets it
            value = np.asarray(value, dtype=object)
        setattr(est, name, value)
    if kind == "classifier":
        est.classes_ = arrays["classes"]
        if state["classes_object"]:
            est.classes_ = est.classes_.astype(object)
        _check(len(np.unique(est.classes_)) == len(est.classes_), "classes_ must be unique")
    else:
        est._y_mean, est._y_scale = arrays["y_mean"], arrays["y_scale"]
        _check(np.isfinite(est._y_mean).all() and np.isfinite(est._y_scale).all()
               and (est._y_scale > 0).all(), "malformed target scaling")
        est._y_single = state["y_single"]
        est._fitted_sequence_output = state["fitted_sequence_output"]
    # files saved before it was recorded: no lengths input, as they exported then
    est._fit_variable_lengths = state.get("variable_lengths", False)
    return est
