"""Safe save and load: one zip file of a JSON header and ``.npy`` arrays.

The format (version 1), as written by :func:`save`:

- ``header.json``: a JSON object with ``format`` (``"fastlstm"``),
  ``format_version``, ``fastlstm_version``, ``class`` (one of ``LSTM``,
  ``RNN``, ``LSTMClassifier``, ``LSTMRegressor``), ``params`` (the
  constructor parameters), ``state`` (fitted attributes that are not
  arrays: loss curves, counters, the network's configuration, random-number
  generator states, ...) and ``arrays``: for each array its ``dtype`` (a
  NumPy type string such as ``"<f4"``) and ``shape``.
- ``arrays/<name>.npy``: one entry per array of the header, in NumPy's
  ``.npy`` format, never an object array.

Entries are stored uncompressed, so no declared size can exceed the file
itself.  Loading reads nothing it has not checked: entry names (exactly the
header and the declared arrays, nothing else), the format version, the class
(from an allow-list, nothing else is ever constructed), every parameter, and
every array's dtype and shape against both the header and the shapes the
model's parameters imply, before any model is built; arrays are read with
``allow_pickle=False`` semantics (object dtypes are refused).  Each entry's
CRC-32 is checked, so a corrupted or truncated file is refused; the file is
not signed, so check where a file comes from before trusting its weights.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from fastlstm._estimators import LSTMClassifier, LSTMRegressor
from fastlstm._lstm import LSTM
from fastlstm._rnn import RNN

__all__ = ["FORMAT_VERSION", "load", "save"]

FORMAT_NAME = "fastlstm"
FORMAT_VERSION = 1
_HEADER = "header.json"
_MAX_HEADER_BYTES = 64 << 20
_MAX_NPY_HEADER = 4096
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,4}")
_FLOAT_DTYPES = ("float32", "float64")
_LAYER_PARAMS = ("input_size", "hidden_size", "num_layers", "bidirectional", "dropout",
                 "dtype", "n_jobs")
# fitted attributes the estimators publish, saved when present
_PUBLISHED = ("n_features_in_", "loss_curve_", "best_loss_", "n_iter_", "t_",
              "validation_scores_", "best_validation_score_")
_NET_CONFIG = ("cell", "n_features", "n_outputs", "hidden_size", "num_layers", "bidirectional",
               "dropout", "dtype", "n_jobs", "sequence_output", "random_state")


class _Invalid(ValueError):
    """A file that is not a valid fastlstm model file (reported by :func:`load`)."""


# the allow-list: load constructs these classes and nothing else
_CLASSES: dict[str, type] = {"LSTM": LSTM, "RNN": RNN, "LSTMClassifier": LSTMClassifier,
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
    if isinstance(value, (list, tuple)):
        return [_scalar(v, name) for v in value]
    return _scalar(value, name)


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
    header["params"] = {k: _encode_param(k, v, arrays)
                        for k, v in est.get_params(deep=False).items()}
    net = est.network_
    ts = est._state
    state: dict[str, Any] = {
        "published": {k: _published(getattr(est, k), k) for k in _PUBLISHED if hasattr(est, k)},
        "table_steps": est._table_steps,
        "architecture": {k: _scalar(v, k) for k, v in est._architecture.items()},
        "network": {k: _scalar(v, k) for k, v in net.config.items()},
        "train_state": {
            "loss_curve": list(ts.loss_curve), "validation_scores": list(ts.validation_scores),
            "best_loss": ts.best_loss, "best_validation_score": ts.best_validation_score,
            "no_improvement_count": ts.no_improvement_count, "n_iter": ts.n_iter, "t": ts.t,
        },
        "rng": _random_state_json(est._rng, "rng.keys", arrays),
        "layer_rng": _generator_json(getattr(net.layer, "_rng", None)),
        "optimizer": None,
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
    from fastlstm import __version__

    header: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                              "fastlstm_version": __version__, "class": kind}
    arrays: dict[str, np.ndarray] = {}
    if kind in ("LSTM", "RNN"):
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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(v: Any, what: str, low: int = 0) -> int:
    _check(_is_int(v) and v >= low, f"{what} must be an int >= {low}, got {v!r}")
    return v


def _check_float(v: Any, what: str) -> float:
    _check(isinstance(v, (int, float)) and not isinstance(v, bool),
           f"{what} must be a number, got {v!r}")
    return float(v)


def _check_bool(v: Any, what: str) -> bool:
    _check(isinstance(v, bool), f"{what} must be true or false, got {v!r}")
    return v


def _check_keys(d: Any, required: tuple[str, ...] | set[str], what: str,
                optional: tuple[str, ...] = ()) -> dict:
    _check(isinstance(d, dict), f"{what} must be a JSON object")
    missing = [k for k in required if k not in d]
    extra = [k for k in d if k not in required and k not in optional]
    _check(not missing and not extra,
           f"{what} does not match the format: missing {missing}, unexpected {extra}")
    return d


def _decode_param(name: str, value: Any, arrays: dict) -> Any:
    if isinstance(value, dict):
        if list(value) == ["__dict__"] and isinstance(value["__dict__"], list):
            items = value["__dict__"]
            _check(all(isinstance(i, list) and len(i) == 2 and all(
                v is None or isinstance(v, (bool, int, float, str)) for v in i) for i in items),
                   f"parameter {name!r} is not a list of [key, value] pairs of scalars")
            return dict(items)
        if list(value) == ["__random_state__"]:
            rs = np.random.RandomState()
            _set_random_state(rs, value["__random_state__"], arrays.get(f"params.{name}"),
                              f"parameter {name!r}")
            return rs
        raise _Invalid(f"parameter {name!r} holds an unknown object {sorted(value)}")
    _check(value is None or isinstance(value, (bool, int, float, str)),
           f"parameter {name!r} must be a JSON scalar, got {type(value).__name__}")
    return value


def _set_random_state(rs: np.random.RandomState, spec: Any, keys: Any, what: str) -> None:
    _check(isinstance(spec, list) and len(spec) == 3 and keys is not None,
           f"{what}: malformed random state")
    try:
        rs.set_state(("MT19937", keys, int(spec[0]), int(spec[1]), float(spec[2])))
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"{what}: malformed random state ({exc})") from None


def _set_generator(layer: Any, spec: Any) -> None:
    if spec is None:
        return
    try:
        bg = np.random.PCG64()
        bg.state = spec
    except (TypeError, ValueError, KeyError) as exc:
        raise _Invalid(f"malformed dropout generator state ({exc})") from None
    layer._rng = np.random.Generator(bg)


def _layer_shapes(cell: str, input_size: int, hidden_size: int, num_layers: int,
                  bidirectional: bool) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of a layer, keyed as its ``state_dict`` (PyTorch's names)."""
    g = (4 if cell == "lstm" else 1) * hidden_size
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
           f"got {params['dtype']!r}")
    dropout = _check_float(params["dropout"], f"{what} dropout")
    _check(0 <= dropout < 1, f"{what} dropout must be in [0, 1), got {dropout}")
    _check(params["n_jobs"] is None or _is_int(params["n_jobs"]),
           f"{what} n_jobs must be null or an int, got {params['n_jobs']!r}")


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
                   f"entry {info.filename!r} is compressed or encrypted; fastlstm writes "
                   "stored entries only")
            _check(file_size is None or info.file_size <= file_size,
                   f"entry {info.filename!r} declares {info.file_size} bytes, more than the "
                   "whole file")
        head = by_name[_HEADER]
        _check(head.file_size <= _MAX_HEADER_BYTES,
               f"{_HEADER} declares {head.file_size} bytes (at most {_MAX_HEADER_BYTES})")
        try:
            header = json.loads(zf.read(head).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _Invalid(f"{_HEADER} is not valid JSON ({exc})") from None
        _check(isinstance(header, dict), f"{_HEADER} must hold a JSON object")
        _check(header.get("format") == FORMAT_NAME,
               f"not a fastlstm model file (format {header.get('format')!r})")
        version = header.get("format_version")
        _check(_is_int(version) and version >= 1,
               f"malformed format_version {version!r}")
        if version > FORMAT_VERSION:
            raise _Invalid(
                f"the file has format version {version}, written by fastlstm "
                f"{header.get('fastlstm_version')!r}; this fastlstm reads format versions up "
                f"to {FORMAT_VERSION}: upgrade fastlstm to load it")
        _check_keys(header, ("format", "format_version", "fastlstm_version", "class",
                             "params", "state", "arrays"), _HEADER)
        specs = header["arrays"]
        _check(isinstance(specs, dict), "'arrays' must be a JSON object")
        self.specs: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        for name, spec in specs.items():
            _check(_ARRAY_NAME.fullmatch(name), f"bad array name {name!r}")
            _check_keys(spec, ("dtype", "shape"), f"array {name!r}")
            dtype = self._dtype(spec["dtype"], name)
            shape = spec["shape"]
            _check(isinstance(shape, list) and len(shape) <= 3
                   and all(_is_int(n) and n >= 0 for n in shape),
                   f"array {name!r} has a malformed shape {shape!r}")
            entry = by_name.get(f"arrays/{name}.npy")
            _check(entry is not None, f"array {name!r} is declared but missing")
            nbytes = math.prod(shape) * dtype.itemsize
            _check(nbytes <= entry.file_size,
                   f"array {name!r} declares shape {tuple(shape)} ({nbytes} bytes), larger "
                   f"than its entry ({entry.file_size} bytes)")
            self.specs[name] = (dtype, tuple(shape))
        expected = {_HEADER} | {f"arrays/{n}.npy" for n in self.specs}
        extra = sorted(set(names) - expected)
        _check(not extra, f"unexpected entries in the archive: {extra[:5]}")
        self.header = header
        self.by_name = by_name

    @staticmethod
    def _dtype(text: Any, name: str) -> np.dtype:
        _check(isinstance(text, str) and len(text) <= 16, f"array {name!r}: bad dtype")
        try:
            dtype = np.dtype(text)
        except TypeError:
            raise _Invalid(f"array {name!r}: unknown dtype {text!r}") from None
        _check(dtype.kind in "biufUS" and not dtype.hasobject and dtype.fields is None,
               f"array {name!r}: dtype {text!r} is not allowed (numbers and strings only)")
        return dtype

    def expect(self, expected: dict[str, tuple[Any, tuple[int, ...]]]) -> None:
        """Check that the declared arrays are exactly ``expected`` (name: (dtype, shape))."""
        missing = sorted(set(expected) - set(self.specs))
        extra = sorted(set(self.specs) - set(expected))
        _check(not missing and not extra,
               f"the arrays do not match the model: missing {missing}, unexpected {extra}")
        for name, (dtype, shape) in expected.items():
            got_dtype, got_shape = self.specs[name]
            _check(got_shape == tuple(shape),
                   f"array {name!r} has shape {got_shape}, the model needs {tuple(shape)}")
            if dtype is not None:
                _check(got_dtype == np.dtype(dtype),
                       f"array {name!r} has dtype {got_dtype}, the model needs "
                       f"{np.dtype(dtype)}")

    def array(self, name: str) -> np.ndarray:
        """Read one declared array, checking its .npy header against the JSON header."""
        dtype, shape = self.specs[name]
        info = self.by_name[f"arrays/{name}.npy"]
        with self.zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    got = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_NPY_HEADER)
                elif version == (2, 0):
                    got = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_NPY_HEADER)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except ValueError as exc:
                raise _Invalid(f"array {name!r}: bad .npy header ({exc})") from None
            got_shape, fortran, got_dtype = got
            _check(got_dtype == dtype and tuple(got_shape) == shape and not fortran,
                   f"array {name!r}: the .npy entry holds {got_dtype} {tuple(got_shape)}"
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
    cell = "lstm" if cls is LSTM else "rnn"
    shapes = _layer_shapes(cell, params["input_size"], params["hidden_size"],
                           params["num_layers"], params["bidirectional"])
    r.expect({f"layer.{k}": (params["dtype"], s) for k, s in shapes.items()})
    weights = {k: r.array(f"layer.{k}") for k in shapes}
    try:
        layer = cls(**params)
        layer.load_state_dict(weights)
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"invalid layer ({exc})") from None
    _set_generator(layer, state["rng"])
    return layer


def _check_network(net: dict, kind: str) -> None:
    _check_keys(net, _NET_CONFIG, "the network configuration")
    _check(net["cell"] in ("lstm", "rnn"), f"unknown cell {net['cell']!r}")
    _check_layer_params({"input_size": net["n_features"], **net}, "network")
    _check_int(net["n_outputs"], "n_outputs", 1)
    _check_bool(net["sequence_output"], "sequence_output")
    _check_int(net["random_state"], "the network's random_state")
    _check(kind == "regressor" or not net["sequence_output"],
           "a classifier cannot have sequence_output")


_ESTIMATOR_STATE = ("published", "table_steps", "architecture", "network", "train_state", "rng",
                    "layer_rng", "optimizer")
_TRAIN_STATE = ("loss_curve", "validation_scores", "best_loss", "best_validation_score",
                "no_improvement_count", "n_iter", "t")


def _check_estimator_state(state: dict, kind: str) -> None:
    """Check the non-array state of an estimator (nothing is built yet)."""
    net = state["network"]
    _check_network(net, kind)
    arch = _check_keys(state["architecture"], ("cell", "hidden_size", "num_layers",
                                               "bidirectional", "dtype"), "architecture",
                       optional=("channels_first",))
    _check(all(arch[a] == net[a] for a in arch if a != "channels_first"),
           "architecture does not match the network")
    if "channels_first" in arch:
        _check_bool(arch["channels_first"], "channels_first")
    steps = state["table_steps"]
    _check(steps is None or _is_int(steps) and steps >= 1,
           "table_steps must be null or a positive int")
    ts = _check_keys(state["train_state"], _TRAIN_STATE, "train_state")
    for name in ("loss_curve", "validation_scores"):
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
        _check(opt["name"] in ("adam", "adamw", "sgd"), f"unknown optimizer {opt['name']!r}")
        _check_int(opt["t"], "the optimizer step count")
        _check(_is_int(opt["groups"]) and 0 <= opt["groups"] <= 2,
               "malformed optimizer groups")
    published = state["published"]
    _check(isinstance(published, dict) and set(published) <= set(_PUBLISHED),
           f"unknown fitted attributes {sorted(set(published) - set(_PUBLISHED))}")
    _check("n_features_in_" in published, "n_features_in_ is missing")
    for name, value in published.items():
        if name in ("n_features_in_", "n_iter_", "t_"):
            _check_int(value, name, 1 if name == "n_features_in_" else 0)
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
    from fastlstm._optim import make_optimizer

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
    from fastlstm._training import SequenceNet, TrainState

    raw = r.header["params"]
    _check(isinstance(raw, dict), "params must be a JSON object")
    est = cls()
    known = set(est.get_params(deep=False))
    _check(set(raw) == known, f"params do not match {cls.__name__}: missing "
           f"{sorted(known - set(raw))}, unexpected {sorted(set(raw) - known)}")
    kind = est._kind
    state = _check_keys(r.header["state"], _ESTIMATOR_STATE, "state",
                        optional=("y_single", "fitted_sequence_output", "classes_object"))
    _check_estimator_state(state, kind)
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
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"invalid {cls.__name__} parameters ({exc})") from None
    net = state["network"]
    network = SequenceNet.__new__(SequenceNet)
    try:
        network.__setstate__({
            "config": dict(net),
            "layer_state": {n[len("layer."):]: a for n, a in arrays.items()
                            if n.startswith("layer.")},
            "weight": arrays["head.weight"], "bias": arrays["head.bias"],
        })
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"invalid network ({exc})") from None
    _set_generator(network.layer, state["layer_rng"])
    est.network_ = network

    est._architecture = dict(state["architecture"])
    est._channels_first = bool(est._architecture.get("channels_first", False))  # X's layout
    est._table_steps = state["table_steps"]
    ts = state["train_state"]
    est._state = TrainState(**{**ts, "loss_curve": [float(v) for v in ts["loss_curve"]],
                               "validation_scores": [float(v) for v in ts["validation_scores"]],
                               "best_loss": float(ts["best_loss"]),
                               "best_validation_score": float(ts["best_validation_score"])})
    est._rng = np.random.RandomState()
    _set_random_state(est._rng, state["rng"], arrays["rng.keys"], "the estimator's generator")
    _restore_optimizer(est, state["optimizer"], arrays, len(param_shapes))
    for name, value in state["published"].items():
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
    return est


def _open(path: Any, describe: str) -> tuple[zipfile.ZipFile, int | None]:
    size = None
    if isinstance(path, (str, os.PathLike)):
        size = os.path.getsize(path)
    elif hasattr(path, "seek") and hasattr(path, "tell"):
        here = path.tell()
        size = path.seek(0, io.SEEK_END) - here
        path.seek(here)
    try:
        return zipfile.ZipFile(path, "r"), size
    except zipfile.BadZipFile as exc:
        raise ValueError(f"Cannot load {describe}: not a fastlstm model file (not a zip "
                         f"archive, or a truncated one: {exc})") from None


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
        message says what is wrong.

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
    zf, size = _open(path, describe)
    with zf:
        try:
            reader = _Reader(zf, size)
            kind = reader.header["class"]
            _check(isinstance(kind, str) and kind in _CLASSES,
                   f"class {kind!r} is not one fastlstm loads (allowed: {', '.join(_CLASSES)})")
            load_fn: Callable = _load_layer if kind in ("LSTM", "RNN") else _load_estimator
            return load_fn(reader, _CLASSES[kind])
        except _Invalid as exc:
            raise ValueError(f"Cannot load {describe}: {exc}") from None
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ValueError(f"Cannot load {describe}: the file is corrupted or truncated "
                             f"({exc})") from None
