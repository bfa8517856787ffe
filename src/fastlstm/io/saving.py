"""Safe save and load: one zip file of a JSON header and ``.npy`` arrays.

The format (version 2), as written by :func:`save`:

- ``header.json``: a JSON object with ``format`` (``"fastlstm"``),
  ``format_version``, ``fastlstm_version``, ``class`` (one of ``LSTM``,
  ``RNN``, ``LSTMClassifier``, ``LSTMRegressor``), ``params`` (the
  constructor parameters; ``callbacks`` is always null: callbacks are user
  objects, not saved), ``state`` (fitted attributes that are not arrays:
  loss curves, ``history_`` records, counters, ``feature_names_in_``, the
  input layout, the network's configuration, random-number generator
  states, ...) and ``arrays``: for each array its ``dtype`` (a NumPy type
  string such as ``"<f4"``) and ``shape``.
- ``arrays/<name>.npy``: one entry per array of the header, in NumPy's
  ``.npy`` format, never an object array.

Entries are stored uncompressed, so no declared size can exceed the file
itself.  Loading reads nothing it has not checked: entry names (exactly the
header and the declared arrays, nothing else), the format version, the class
(from an allow-list, nothing else is ever constructed), every parameter, and
every array's dtype and shape against both the header and the shapes the
model's parameters imply, before any model is built; arrays are read with
``allow_pickle=False`` semantics (object dtypes are refused).  The counts and
sizes the header declares (layers, input and hidden sizes, outputs) are
bounded by the arrays the file holds before anything is built, so a small
hostile file is refused at once, and damaged bytes of any kind (a zip record,
an ``.npy`` header, a generator's state) are reported as ``ValueError``.
Each entry's CRC-32 is checked, so a corrupted or truncated file is refused;
the file is not signed, so check where a file comes from before trusting its
weights.

Version 2 added the estimators' ``channels_first``, ``history_``,
``validation_losses_`` and ``feature_names_in_``; layer files did not change,
so layer files of version 1 still load, estimator files of version 1 do not.
"""

from __future__ import annotations

import heapq
import io
import json
import math
import os
import re
import reprlib
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import numpy as np

from fastlstm._version import __version__
from fastlstm.estimators import LSTMClassifier, LSTMRegressor
from fastlstm.nn import registry

__all__ = ["FORMAT_VERSION", "load", "save"]

FORMAT_NAME = "fastlstm"
FORMAT_VERSION = 2
# layer files are the same in every version so far; estimator files changed in 2
_MIN_ESTIMATOR_VERSION = 2
_HEADER = "header.json"
_MAX_HEADER_BYTES = 64 << 20
_MAX_NPY_HEADER = 4096
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,4}")
_FLOAT_DTYPES = ("float32", "float64")
_LAYER_PARAMS = ("input_size", "hidden_size", "num_layers", "bidirectional", "dropout",
                 "dtype", "n_jobs")
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
# every count and counter of a real model fits in 64 bits (NumPy and C code take them)
_INT_MAX = (1 << 63) - 1
# dtypes as save writes them (``ndarray.dtype.str``): numbers and strings only
_DTYPE_TEXT = re.compile(r"[<>|=]?[biufUS][0-9]{1,10}")
# what malformed bytes make zipfile, zlib, struct, json and NumPy's .npy reader
# raise; turned into ValueError where the file's bytes are read (see _reading)
_MALFORMED: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, NotImplementedError, EOFError, OSError, OverflowError, struct.error,
    zlib.error, UnicodeDecodeError, ValueError, MemoryError, RecursionError)
# how much of a value, a list of names or an exception message an error message shows
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40
_MAX_NAMES = 6


class _Invalid(ValueError):
    """A file that is not a valid fastlstm model file (reported by :func:`load`)."""


# the allow-list: load constructs these classes and nothing else (the
# registered cells' layers and the estimators)
_LAYERS: dict[str, type] = {registry.layer_class(n).__name__: registry.layer_class(n)
                            for n in registry.names()}
_CLASSES: dict[str, type] = {**_LAYERS, "LSTMClassifier": LSTMClassifier,
                             "LSTMRegressor": LSTMRegressor}


# ------------------------------------------------------------------ encoding
def _scalar(value: Any, what: str) -> Any:
    """A JSON scalar for ``value`` (NumPy scalars become Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save {what}={value!r}: only None, bool, int, float and str "
                    f"parameters can be saved, not {type(value).__name__}")


def _encode_param(name: str, value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        return {"__dict__": [[_scalar(k, f"{name} key"), _scalar(v, f"{name}[{k!r}]")]
                             for k, v in value.items()]}
    if isinstance(value, np.random.RandomState):
        return {"__random_state__": _random_state_json(value, f"params.{name}", arrays)}
    return _scalar(value, name)


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


def _published(value: Any, name: str) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):  # feature_names_in_ is an array
        return [_scalar(v, name) for v in value]
    return _scalar(value, name)


def _history_record(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict) or sorted(record) != sorted(_HISTORY_KEYS):
        raise TypeError(f"cannot save the history_ record {record!r}: a record has the keys "
                        f"{list(_HISTORY_KEYS)}")
    return {k: _scalar(v, f"history_ {k!r}") for k, v in record.items()}


def _layer_params(layer: Any) -> dict[str, Any]:
    params = {name: getattr(layer, name) for name in _LAYER_PARAMS}
    params["dtype"] = np.dtype(params["dtype"]).name
    return {k: _scalar(v, k) for k, v in params.items()}


def _dump_layer(layer: Any, header: dict, arrays: dict[str, np.ndarray]) -> None:
    header["params"] = _layer_params(layer)
    header["state"] = {"rng": _generator_json(getattr(layer, "_rng", None))}
    for name, value in layer.state_dict().items():
        arrays[f"layer.{name}"] = value


def _dump_estimator(est: Any, header: dict, arrays: dict[str, np.ndarray],
                    include_optimizer: bool) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "network_")
    params = est.get_params(deep=False)
    if params.get("callbacks"):
        warnings.warn(
            f"the callbacks of this {type(est).__name__} are not saved (they are Python "
            "objects, which a safe file cannot hold): the loaded model has callbacks=None; "
            "pass them again with set_params(callbacks=...) before training it further",
            UserWarning, stacklevel=3)
    params["callbacks"] = None
    header["params"] = {k: _encode_param(k, v, arrays) for k, v in params.items()}
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


def save(model: Any, path: str | os.PathLike | BinaryIO, *,
         include_optimizer: bool = True) -> None:
    """Save a layer or a fitted estimator to one file, without pickle.

    The file is a zip archive holding a JSON header (format version, class,
    constructor parameters, fitted attributes) and the arrays as ``.npy``
    entries; :func:`load` reads it back without ever unpickling anything.
    See the user guide page "Saving and deploying" for the format.

    Parameters
    ----------
    model : LSTM, RNN, LSTMClassifier or LSTMRegressor
        A layer, or a fitted estimator.
    path : str, path-like or binary file object
        Where to write (an existing file is replaced).
    include_optimizer : bool, default=True
        Also store the optimizer's state (step count and moment buffers) of
        an estimator, so that ``partial_fit`` or a ``warm_start`` fit after
        :func:`load` continues exactly as it would have without the round
        trip.  Without it the file is smaller and training continues with a
        fresh optimizer.

    Notes
    -----
    An estimator's ``callbacks`` are not saved: they are arbitrary Python
    objects, which a file that loads without running code cannot hold.  The
    file records ``callbacks=None`` (with a warning when callbacks were set);
    pass them again with ``set_params(callbacks=...)`` after :func:`load`
    before training further.  Everything else (the other parameters,
    ``history_``, ``validation_losses_``, ``feature_names_in_``, the input
    layout of ``channels_first``) travels.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import fastlstm
    >>> X = np.random.default_rng(0).uniform(size=(40, 5, 2))
    >>> reg = fastlstm.LSTMRegressor(hidden_size=8, max_epochs=2, random_state=0)
    >>> reg = reg.fit(X, X[:, -1, 0])
    >>> buffer = io.BytesIO()
    >>> fastlstm.save(reg, buffer)
    >>> loaded = fastlstm.load(io.BytesIO(buffer.getvalue()))
    >>> bool((loaded.predict(X) == reg.predict(X)).all())
    True
    """
    if not isinstance(include_optimizer, (bool, np.bool_)):
        raise TypeError(f"include_optimizer must be a bool, got {include_optimizer!r}")
    kind = type(model).__name__
    if _CLASSES.get(kind) is not type(model):
        raise TypeError(f"save supports {', '.join(_CLASSES)}; got {type(model).__name__}")
    header: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                              "fastlstm_version": __version__, "class": kind}
    arrays: dict[str, np.ndarray] = {}
    if kind in _LAYERS:
        _dump_layer(model, header, arrays)
    else:
        _dump_estimator(model, header, arrays, bool(include_optimizer))
    header["arrays"] = {name: {"dtype": a.dtype.str, "shape": list(a.shape)}
                        for name, a in arrays.items()}
    blob = json.dumps(header, indent=1, sort_keys=True).encode("utf-8")
    # everything is encoded: only now is the destination touched
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        _write_entry(zf, _HEADER, blob)
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            _write_entry(zf, f"arrays/{name}.npy", buf.getvalue())


def _write_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    # a fixed timestamp and mode: the same model gives the same bytes, so a
    # published checksum identifies it
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)


# ------------------------------------------------------------------ decoding
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


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """Turn what malformed bytes raise while ``what`` is read into a load error.

    zipfile, struct, zlib and NumPy's ``.npy`` reader report damaged data with
    many exception classes (``BadZipFile``, ``NotImplementedError`` for an
    unknown zip version, ``OverflowError`` for absurd offsets, ...); this is
    the one place they become the documented ``ValueError``.  Only the reading
    of the file's bytes is wrapped, never the building of the model.
    """
    try:
        yield
    except _Invalid:
        raise
    except _MALFORMED as exc:
        raise _Invalid(f"{what}: the file is corrupted or truncated "
                       f"({type(exc).__name__}: {_detail(exc)})") from None


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


def _check_magnitude(value: Any, what: str) -> None:
    # no parameter of a real model is an int beyond 64 bits; NumPy and float()
    # would overflow on one long after loading
    _check(not _is_int(value) or -_INT_MAX <= value <= _INT_MAX,
           f"{what} is out of range, got {_short(value)}")


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


class _Reader:
    """A validated view of an open archive: header first, arrays on demand."""

    def __init__(self, zf: zipfile.ZipFile, file_size: int | None) -> None:
        self.zf = zf
        infos = zf.infolist()
        names = [i.filename for i in infos]
        _check(len(set(names)) == len(names), "the archive holds duplicate entry names")
        by_name = {i.filename: i for i in infos}
        _check(_HEADER in by_name, f"the archive has no {_HEADER}: not a fastlstm model file")
        for info in infos:
            _check(info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1,
                   f"entry {_short(info.filename)} is compressed or encrypted; fastlstm writes "
                   "stored entries only")
            _check(file_size is None or info.file_size <= file_size,
                   f"entry {_short(info.filename)} declares {info.file_size} bytes, more than "
                   "the whole file")
            # a stored entry's data is its content: both sizes are the same
            _check(info.compress_size == info.file_size,
                   f"entry {_short(info.filename)} declares {info.compress_size} stored bytes "
                   f"for {info.file_size} bytes of content")
        head = by_name[_HEADER]
        _check(head.file_size <= _MAX_HEADER_BYTES,
               f"{_HEADER} declares {head.file_size} bytes (at most {_MAX_HEADER_BYTES})")
        with _reading(_HEADER):
            raw = zf.read(head)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:
            raise _Invalid(f"{_HEADER} is not valid JSON ({_detail(exc)})") from None
        _check(isinstance(header, dict), f"{_HEADER} must hold a JSON object")
        _check(header.get("format") == FORMAT_NAME,
               f"not a fastlstm model file (format {_short(header.get('format'))})")
        version = header.get("format_version")
        _check(_is_int(version) and version >= 1,
               f"malformed format_version {_short(version)}")
        if version > FORMAT_VERSION:
            raise _Invalid(
                f"the file has format version {_short(version)}, written by fastlstm "
                f"{_short(header.get('fastlstm_version'))}; this fastlstm reads format "
                f"versions up to {FORMAT_VERSION}: upgrade fastlstm to load it")
        _check_keys(header, ("format", "format_version", "fastlstm_version", "class",
                             "params", "state", "arrays"), _HEADER)
        specs = header["arrays"]
        _check(isinstance(specs, dict), "'arrays' must be a JSON object")
        self.specs: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        for name, spec in specs.items():
            _check(_ARRAY_NAME.fullmatch(name), f"bad array name {_short(name)}")
            _check_keys(spec, ("dtype", "shape"), f"array {name!r}")
            dtype = self._dtype(spec["dtype"], name)
            shape = spec["shape"]
            _check(isinstance(shape, list) and len(shape) <= 3
                   and all(_is_int(n) and n >= 0 for n in shape),
                   f"array {name!r} has a malformed shape {_short(shape)}")
            entry = by_name.get(f"arrays/{name}.npy")
            _check(entry is not None, f"array {name!r} is declared but missing")
            nbytes = math.prod(shape) * dtype.itemsize
            # each dimension too: an empty array's other dimensions are no bound
            _check(nbytes <= entry.file_size and all(n <= entry.file_size for n in shape),
                   f"array {name!r} declares shape {_short(tuple(shape))} ({_short(nbytes)} "
                   f"bytes), larger than its entry ({entry.file_size} bytes)")
            self.specs[name] = (dtype, tuple(shape))
        expected = {_HEADER} | {f"arrays/{n}.npy" for n in self.specs}
        extra = set(names) - expected
        _check(not extra, f"unexpected entries in the archive: {_names(extra)}")
        self.header = header
        self.version = version
        self.by_name = by_name

    @staticmethod
    def _dtype(text: Any, name: str) -> np.dtype:
        _check(isinstance(text, str) and _DTYPE_TEXT.fullmatch(text),
               f"array {name!r}: dtype {_short(text)} is not allowed (numbers and strings "
               "only)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated aliases are refused below
                dtype = np.dtype(text)
        except (TypeError, ValueError, OverflowError):
            raise _Invalid(f"array {name!r}: unknown dtype {text!r}") from None
        _check(dtype.kind in "biufUS" and not dtype.hasobject and dtype.fields is None
               and dtype.itemsize > 0,
               f"array {name!r}: dtype {text!r} is not allowed (numbers and strings only)")
        return dtype

    def count(self, prefix: str) -> int:
        """How many declared arrays are named ``prefix...``."""
        return sum(name.startswith(prefix) for name in self.specs)

    def largest_dimension(self, prefix: str) -> int:
        """The largest dimension of the declared arrays named ``prefix...`` (0 if none)."""
        return max((n for name, (_, shape) in self.specs.items() if name.startswith(prefix)
                    for n in shape), default=0)

    def expect(self, expected: dict[str, tuple[Any, tuple[int, ...]]]) -> None:
        """Check that the declared arrays are exactly ``expected`` (name: (dtype, shape))."""
        missing = set(expected) - set(self.specs)
        extra = set(self.specs) - set(expected)
        _check(not missing and not extra,
               f"the arrays do not match the model: missing {_names(missing)}, "
               f"unexpected {_names(extra)}")
        for name, (dtype, shape) in expected.items():
            got_dtype, got_shape = self.specs[name]
            _check(got_shape == tuple(shape),
                   f"array {name!r} has shape {got_shape}, the model needs "
                   f"{_short(tuple(shape))}")
            if dtype is not None:
                _check(got_dtype == np.dtype(dtype),
                       f"array {name!r} has dtype {got_dtype}, the model needs "
                       f"{np.dtype(dtype)}")

    def array(self, name: str) -> np.ndarray:
        """Read one declared array, checking its .npy header against the JSON header."""
        dtype, shape = self.specs[name]
        info = self.by_name[f"arrays/{name}.npy"]
        with _reading(f"array {name!r}"), self.zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    got = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_NPY_HEADER)
                elif version == (2, 0):
                    got = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_NPY_HEADER)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:
                raise _Invalid(f"array {name!r}: bad .npy header ({_detail(exc)})") from None
            got_shape, fortran, got_dtype = got
            _check(got_dtype == dtype and tuple(got_shape) == shape and not fortran,
                   f"array {name!r}: the .npy entry holds {got_dtype} {_short(tuple(got_shape))}"
                   f"{' (Fortran order)' if fortran else ''}, the header declares {dtype} "
                   f"{shape}")
            nbytes = math.prod(shape) * dtype.itemsize
            _check(f.tell() + nbytes == info.file_size,
                   f"array {name!r}: the entry has {info.file_size - f.tell()} bytes of "
                   f"data for {nbytes} declared")
            data = f.read(nbytes)  # reaching the end checks the CRC
            _check(len(data) == nbytes, f"array {name!r} is truncated")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


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


def _open(f: BinaryIO) -> tuple[zipfile.ZipFile, int | None]:
    """The archive of an open binary file, and the file's size from where it stands."""
    size = None
    if hasattr(f, "seek") and hasattr(f, "tell"):
        here = f.tell()
        size = f.seek(0, io.SEEK_END) - here
        f.seek(here)
    try:
        return zipfile.ZipFile(f, "r"), size
    except zipfile.BadZipFile as exc:
        raise _Invalid(f"not a fastlstm model file (not a zip archive, or a truncated one: "
                       f"{exc})") from None
    except _MALFORMED as exc:  # e.g. an unknown "version needed" in an entry record
        raise _Invalid(f"not a fastlstm model file, or a corrupted one (its zip directory "
                       f"is malformed: {type(exc).__name__}: {_detail(exc)})") from None


def _load(f: BinaryIO) -> Any:
    zf, size = _open(f)
    with zf:
        reader = _Reader(zf, size)
        kind = reader.header["class"]
        _check(isinstance(kind, str) and kind in _CLASSES,
               f"class {_short(kind)} is not one fastlstm loads (allowed: "
               f"{', '.join(_CLASSES)})")
        load_fn: Callable = _load_layer if kind in _LAYERS else _load_estimator
        return load_fn(reader, _CLASSES[kind])


def load(path: str | os.PathLike | BinaryIO) -> Any:
    """Load a model written by :func:`save`, without unpickling anything.

    Only fastlstm's own classes (``LSTM``, ``RNN``, ``LSTMClassifier``,
    ``LSTMRegressor``) are constructed, and only after every entry name,
    parameter, dtype and shape of the file has been checked against its
    header and against the shapes the parameters imply.  A loaded estimator
    predicts bit-identically to the saved one and can continue training
    (``partial_fit``, ``warm_start``).

    Parameters
    ----------
    path : str, path-like or binary file object
        The file written by :func:`save`.

    Returns
    -------
    model : LSTM, RNN, LSTMClassifier or LSTMRegressor

    Raises
    ------
    ValueError
        If the file is not a fastlstm model file, is corrupted, truncated or
        tampered with, or was written in a newer format version; the
        message says what is wrong.  Sizes and counts the header declares
        are checked against what the file holds before anything is built,
        so a small hostile file is refused at once.
    OSError
        If ``path`` names a file that cannot be opened (for example, one
        that does not exist).

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import fastlstm
    >>> layer = fastlstm.LSTM(3, 4, num_layers=2, random_state=0)
    >>> buffer = io.BytesIO()
    >>> fastlstm.save(layer, buffer)
    >>> copy = fastlstm.load(io.BytesIO(buffer.getvalue()))
    >>> x = np.ones((2, 5, 3), dtype=np.float32)
    >>> bool((copy.forward(x)[0] == layer.forward(x)[0]).all())
    True
    >>> fastlstm.load(io.BytesIO(b"not a model"))
    Traceback (most recent call last):
    ...
    ValueError: Cannot load the file: not a fastlstm model file (not a zip archive, ...)
    """
    describe = repr(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else "the file"
    try:
        if isinstance(path, (str, os.PathLike)):
            # a file that cannot be opened (missing, a directory, no permission)
            # raises its OSError here; everything read after it is checked
            with open(path, "rb") as f:
                return _load(f)
        return _load(path)
    except _Invalid as exc:
        raise ValueError(f"Cannot load {describe}: {exc}") from None
