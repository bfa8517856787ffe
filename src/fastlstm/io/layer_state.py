"""A layer's state in a model file: its parameters and weights, written and checked back.

Also the shapes a layer's parameters imply and the checks of a layer's
declared parameters and sizes, which an estimator's network shares.
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
    _detail,
    _Invalid,
    _is_int,
    _scalar,
    _short,
)
from fastlstm.io.rng_state import _generator_json, _set_generator
from fastlstm.nn import registry

_FLOAT_DTYPES = ("float32", "float64")
_LAYER_PARAMS = ("input_size", "hidden_size", "num_layers", "bidirectional", "dropout",
                 "dtype", "n_jobs")


def _layer_params(layer: Any) -> dict[str, Any]:
    params = {name: getattr(layer, name) for name in _LAYER_PARAMS}
    params["dtype"] = np.dtype(params["dtype"]).name
    return {k: _scalar(v, k) for k, v in params.items()}


def _dump_layer(layer: Any, header: dict, arrays: dict[str, np.ndarray]) -> None:
    header["params"] = _layer_params(layer)
    header["state"] = {"rng": _generator_json(getattr(layer, "_rng", None))}
    for name, value in layer.state_dict().items():
        arrays[f"layer.{name}"] = value


def _layer_shapes(cell: str, input_size: int, hidden_size: int, num_layers: int,
                  bidirectional: bool) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of a layer, keyed as its ``state_dict`` (PyTorch's names)."""
    g = registry.spec(cell).gates * hidden_size
    d = 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        n_in = input_size if layer == 0 else d * hidden_size
        for direction in range(d):
            s = f"_l{layer}" + ("_reverse" if direction else "")
            shapes[f"weight_ih{s}"] = (g, n_in)
            shapes[f"weight_hh{s}"] = (g, hidden_size)
            shapes[f"bias_ih{s}"] = (g,)
            shapes[f"bias_hh{s}"] = (g,)
    return shapes


def _check_layer_params(params: dict, what: str) -> None:
    for k in ("input_size", "hidden_size", "num_layers"):
        _check_int(params[k], f"{what} {k}", 1)
    _check_bool(params["bidirectional"], f"{what} bidirectional")
    _check(params["dtype"] in _FLOAT_DTYPES, f"{what} dtype must be one of {_FLOAT_DTYPES}, "
           f"got {_short(params['dtype'])}")
    dropout = _check_float(params["dropout"], f"{what} dropout")
    _check(0 <= dropout < 1, f"{what} dropout must be in [0, 1), got {dropout}")
    _check(params["n_jobs"] is None or _is_int(params["n_jobs"])
           and -_INT_MAX <= params["n_jobs"] <= _INT_MAX,
           f"{what} n_jobs must be null or an int, got {_short(params['n_jobs'])}")


def _check_layer_sizes(r: _Reader, what: str, input_size: int, hidden_size: int,
                       num_layers: int, bidirectional: bool,
                       input_name: str = "input_size") -> None:
    """Bound a layer's declared sizes by the arrays the file holds, before any loop.

    A layer of ``num_layers`` layers has ``4 * num_layers`` parameter arrays per
    direction, and its sizes are dimensions of those arrays: a header that
    declares more than the file holds is refused here, in constant time, not
    after listing the names of millions of arrays that are not there.
    """
    d = 2 if bidirectional else 1
    held = r.count("layer.")
    needed = 4 * d * num_layers
    _check(needed == held,
           f"{what} num_layers={num_layers}{' (bidirectional)' if d == 2 else ''} needs "
           f"{needed} layer parameter arrays; the file holds {held}")
    largest = r.largest_dimension("layer.")
    for name, value in ((input_name, input_size), ("hidden_size", hidden_size)):
        _check(value <= largest,
               f"{what} {name}={value} is larger than every dimension of the file's layer "
               f"arrays (at most {largest})")


def _load_layer(r: _Reader, cls: type) -> Any:
    params = _check_keys(r.header["params"], _LAYER_PARAMS, "params")
    _check_layer_params(params, "layer")
    state = _check_keys(r.header["state"], ("rng",), "state")
    cell = cls.spec.name
    _check_layer_sizes(r, "the layer's", params["input_size"], params["hidden_size"],
                       params["num_layers"], params["bidirectional"])
    shapes = _layer_shapes(cell, params["input_size"], params["hidden_size"],
                           params["num_layers"], params["bidirectional"])
    r.expect({f"layer.{k}": (params["dtype"], s) for k, s in shapes.items()})
    weights = {k: r.array(f"layer.{k}") for k in shapes}
    try:
        layer = cls(**params)
        layer.load_state_dict(weights)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Invalid(f"invalid layer ({_detail(exc)})") from None
    _set_generator(layer, state["rng"])
    return layer
