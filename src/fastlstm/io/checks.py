"""Checks of the values a model file's header holds, and the JSON scalars save writes.

:func:`fastlstm.load` passes every value it reads from a header through these
checks before anything is built; a failed check raises :class:`_Invalid`,
which ``load`` reports as ``ValueError``.  The messages show a hostile
header's values shortened.
"""

from __future__ import annotations

import heapq
import reprlib
from collections.abc import Iterable
from typing import Any

import numpy as np

# every count and counter of a real model fits in 64 bits (NumPy and C code take them)
_INT_MAX = (1 << 63) - 1
# how much of a value, a list of names or an exception message an error message shows
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40
_MAX_NAMES = 6


class _Invalid(ValueError):
    """A file that is not a valid fastlstm model file (reported by :func:`load`)."""


def _scalar(value: Any, what: str) -> Any:
    """A JSON scalar for ``value`` (NumPy scalars become Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save {what}={value!r}: only None, bool, int, float and str "
                    f"parameters can be saved, not {type(value).__name__}")


def _check(cond: Any, message: str) -> None:
    if not cond:
        raise _Invalid(message)


def _short(value: Any) -> str:
    """``repr(value)``, shortened: a hostile header's values can be megabytes long."""
    return _SHORT.repr(value)


def _names(names: Iterable[str]) -> str:
    """The first few of ``names`` in sorted order, and how many more there are."""
    names = list(names)
    first = heapq.nsmallest(_MAX_NAMES, names)
    shown = "[" + ", ".join(_short(n) for n in first) + "]"
    more = len(names) - len(first)
    return shown if not more else f"{shown[:-1]}, ... ({more} more)]"


def _detail(exc: BaseException) -> str:
    """The message of ``exc``, shortened (it may quote a hostile value)."""
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(v: Any, what: str, low: int = 0, high: int = _INT_MAX) -> int:
    if not (_is_int(v) and low <= v <= high):
        bits = (high + 1).bit_length() - 1
        top = f"2**{bits} - 1" if high > 1 << 20 and high + 1 == 1 << bits else str(high)
        raise _Invalid(f"{what} must be an int in [{low}, {top}], got {_short(v)}")
    return v


def _check_float(v: Any, what: str) -> float:
    _check(isinstance(v, (int, float)) and not isinstance(v, bool),
           f"{what} must be a number, got {_short(v)}")
    try:
        return float(v)
    except OverflowError:  # an int beyond the float range
        raise _Invalid(f"{what} is out of range, got {_short(v)}") from None


def _check_bool(v: Any, what: str) -> bool:
    _check(isinstance(v, bool), f"{what} must be true or false, got {_short(v)}")
    return v


def _check_keys(d: Any, required: tuple[str, ...] | set[str], what: str,
                optional: tuple[str, ...] = ()) -> dict:
    _check(isinstance(d, dict), f"{what} must be a JSON object")
    missing = [k for k in required if k not in d]
    extra = [k for k in d if k not in required and k not in optional]
    _check(not missing and not extra,
           f"{what} does not match the format: missing {_names(missing)}, "
           f"unexpected {_names(extra)}")
    return d


def _check_magnitude(value: Any, what: str) -> None:
    # no parameter of a real model is an int beyond 64 bits; NumPy and float()
    # would overflow on one long after loading
    _check(not _is_int(value) or -_INT_MAX <= value <= _INT_MAX,
           f"{what} is out of range, got {_short(value)}")
