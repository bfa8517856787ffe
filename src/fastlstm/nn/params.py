"""A layer's constructor arguments and parameter arrays: checks, seeding, documentation."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from fastlstm.runtime.parallel import effective_n_jobs

_DTYPES = {"float32": np.float32, "float64": np.float64}


# The constructor parameters every layer documents (LSTM and RNN docstrings).
LAYER_PARAMETERS = """
    input_size : int
        Number of features of each time step of the input.
    hidden_size : int
        Number of hidden units ``H`` per direction.
    num_layers : int, default=1
        Number of stacked layers.
    bidirectional : bool, default=False
        Run a second, time-reversed direction in every layer and concatenate.
    dropout : float, default=0.0
        Dropout probability on the inputs of layers after the first, applied
        only by ``forward(..., training=True)``, as in PyTorch (so with
        ``num_layers=1`` it has no effect, and a warning says so).
    dtype : {"float32", "float64"}, default="float32"
        Precision of parameters and computation.
    n_jobs : int or None, default=None
        Threads to use: None or -1 for all usable cores, ``k > 0`` for ``k``.
    random_state : int, numpy Generator or None, default=None
        Seeds the initialization (uniform in ``±1/sqrt(hidden_size)``, as
        PyTorch) and the dropout masks."""


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if resolved not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _make_rng(random_state: Any) -> np.random.Generator:
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    raise TypeError(f"random_state must be None, an int or a numpy random generator, "
                    f"got {random_state!r}")


def check_config(layer: Any) -> None:
    """Check a layer's configuration attributes (as the constructor does), for unpickling."""
    for name in ("input_size", "hidden_size", "num_layers"):
        _check_positive_int(name, getattr(layer, name))
    if not isinstance(layer.bidirectional, bool):
        raise TypeError(f"bidirectional must be a bool, got {layer.bidirectional!r}")
    if not isinstance(layer.dropout, float) or not 0.0 <= layer.dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {layer.dropout!r}")
    layer.dtype = _check_dtype(layer.dtype)
    effective_n_jobs(layer.n_jobs)
    if not isinstance(layer._rng, np.random.Generator):
        raise TypeError(f"the random generator must be a numpy Generator, got {layer._rng!r}")


def _checked_params(values: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]],
                    dtype: np.dtype, what: str = "parameters") -> dict[str, np.ndarray]:
    """Validate parameters against their expected names and shapes; return them in ``dtype``.

    Finiteness is checked after the cast, so that float64 values too large for
    float32 (which become inf) are refused too.  Returned arrays are
    C-contiguous and writable; an input array already so is used as it is.
    """
    missing = [k for k in expected if k not in values]
    extra = [k for k in values if k not in expected]
    if missing or extra:
        raise ValueError(f"{what} does not match the layer: missing keys {missing}, "
                         f"unexpected keys {extra}")
    staged = {}
    for name, shape in expected.items():
        value = values[name]
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.shape != tuple(shape):
            raise ValueError(f"{what}[{name!r}] has shape {value.shape}, "
                             f"expected {tuple(shape)}")
        if value.dtype.kind not in "fiu":
            raise TypeError(f"{what}[{name!r}] must be numeric, got {value.dtype}")
        if value.dtype != dtype or not value.flags.c_contiguous or not value.flags.writeable:
            with np.errstate(over="ignore"):  # reported just below, with the reason
                value = np.array(value, dtype=dtype, order="C")
        if not np.isfinite(value).all():
            raise ValueError(f"{what}[{name!r}] contains NaN or infinity "
                             f"(or values too large for {dtype})")
        staged[name] = value
    return staged
