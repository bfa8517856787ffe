"""Random-number generator states in a model file: written, and restored after checks.

An estimator's ``RandomState`` (and one given as its ``random_state``) is
stored as its position, has_gauss flag and cached gaussian in the header and
its 624 key words as an array; a layer's dropout ``Generator`` as its PCG64
state in the header.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastlstm.io.checks import (
    _check,
    _check_float,
    _check_int,
    _check_keys,
    _detail,
    _Invalid,
    _short,
)


def _random_state_json(rng: np.random.RandomState, name: str,
                       arrays: dict[str, np.ndarray]) -> list:
    _, keys, pos, has_gauss, gauss = rng.get_state()
    arrays[name] = np.asarray(keys, dtype=np.uint32)
    return [int(pos), int(has_gauss), float(gauss)]


def _generator_json(rng: Any) -> dict | None:
    # a layer's dropout generator; only PCG64 (what default_rng makes) is saved
    if isinstance(rng, np.random.Generator) and isinstance(rng.bit_generator, np.random.PCG64):
        return rng.bit_generator.state
    return None


# MT19937 keeps 624 words; its position is an index into them, which NumPy
# does not bound-check (a position past them would read outside its state)
_MT_WORDS = 624


def _set_random_state(rs: np.random.RandomState, spec: Any, keys: Any, what: str) -> None:
    _check(isinstance(spec, list) and len(spec) == 3 and keys is not None,
           f"{what}: malformed random state")
    pos, has_gauss, gauss = spec
    _check_int(pos, f"{what}: the random state's position", 0, _MT_WORDS)
    _check_int(has_gauss, f"{what}: the random state's has_gauss", 0, 1)
    gauss = _check_float(gauss, f"{what}: the random state's cached gaussian")
    _check(math.isfinite(gauss), f"{what}: the random state's cached gaussian must be finite, "
           f"got {gauss}")
    try:
        rs.set_state(("MT19937", keys, pos, has_gauss, gauss))
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Invalid(f"{what}: malformed random state ({_detail(exc)})") from None


_PCG64_KEYS = ("bit_generator", "state", "has_uint32", "uinteger")


def _set_generator(layer: Any, spec: Any) -> None:
    if spec is None:
        return
    what = "the dropout generator state"
    _check_keys(spec, _PCG64_KEYS, what)
    _check(spec["bit_generator"] == "PCG64",
           f"{what}: unknown bit generator {_short(spec['bit_generator'])} (PCG64 expected)")
    words = _check_keys(spec["state"], ("state", "inc"), f"{what} 'state'")
    for key, value in words.items():  # 128-bit words
        _check_int(value, f"{what}: {key}", 0, (1 << 128) - 1)
    _check_int(spec["has_uint32"], f"{what}: has_uint32", 0, 1)
    _check_int(spec["uinteger"], f"{what}: uinteger", 0, (1 << 32) - 1)
    try:
        bg = np.random.PCG64()
        bg.state = spec
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise _Invalid(f"malformed dropout generator state ({_detail(exc)})") from None
    layer._rng = np.random.Generator(bg)
