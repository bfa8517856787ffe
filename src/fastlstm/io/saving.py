"""Safe save and load: one zip file of a JSON header and ``.npy`` arrays.

The format (version 2), as written by :func:`save`:

- ``header.json``: a JSON object with ``format`` (``"fastlstm"``),
  ``format_version``, ``fastlstm_version``, ``class`` (a layer, an estimator,
  ``SequenceScaler`` or ``Pipeline``: the allow-list below), ``params`` (the
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

The code is split by idea: :mod:`fastlstm.io.archive` (the zip and its
``.npy`` entries, read and written with their safety checks),
:mod:`fastlstm.io.checks` (checks of header values),
:mod:`fastlstm.io.rng_state` (generator states),
:mod:`fastlstm.io.layer_state` and :mod:`fastlstm.io.estimator_state` (a
layer's and an estimator's state), :mod:`fastlstm.io.forecaster_state` (a
forecaster's: its inner regressors, as estimators, with their window
scalings and the ends of the training series); this module holds the allow-list of
classes and the entry points.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
from sklearn.pipeline import Pipeline

from fastlstm._version import __version__
from fastlstm.estimators import LSTMClassifier, LSTMRegressor
from fastlstm.estimators.forecaster import LSTMForecaster
from fastlstm.estimators.scaler import SequenceScaler
from fastlstm.io.archive import FORMAT_NAME, FORMAT_VERSION, _open, _Reader, _write
from fastlstm.io.checks import _check, _Invalid, _short
from fastlstm.io.estimator_state import _dump_estimator, _load_estimator
from fastlstm.io.forecaster_state import _dump_forecaster, _load_forecaster
from fastlstm.io.layer_state import _dump_layer, _load_layer
from fastlstm.io.pipeline_state import _dump_pipeline, _load_pipeline
from fastlstm.io.scaler_state import _dump_scaler, _load_scaler
from fastlstm.nn import registry

__all__ = ["FORMAT_VERSION", "load", "save"]

# the allow-list: load constructs these classes and nothing else (the
# registered cells' layers, the estimators, the scaler and a Pipeline of them)
_LAYERS: dict[str, type] = {registry.layer_class(n).__name__: registry.layer_class(n)
                            for n in registry.names()}
_CLASSES: dict[str, type] = {**_LAYERS, "LSTMClassifier": LSTMClassifier,
                             "LSTMRegressor": LSTMRegressor, "SequenceScaler": SequenceScaler,
                             "Pipeline": Pipeline, "LSTMForecaster": LSTMForecaster}


def _steps() -> dict[str, type]:
    """The classes a saved Pipeline's steps may have: all above but layers and Pipeline."""
    return {k: v for k, v in _CLASSES.items() if k not in _LAYERS and k != "Pipeline"}


def _dump(model: Any, header: dict, arrays: dict[str, np.ndarray],
          include_optimizer: bool) -> None:
    kind = type(model).__name__
    if kind == "SequenceScaler":
        _dump_scaler(model, header, arrays)
    elif kind == "Pipeline":
        _dump_pipeline(model, header, arrays,
                       lambda m, h, a: _dump(m, h, a, include_optimizer), _steps())
    elif kind in _LAYERS:
        _dump_layer(model, header, arrays)
    elif kind == "LSTMForecaster":  # its inner regressors are saved as estimators are
        _dump_forecaster(model, header, arrays, include_optimizer)
    else:
        _dump_estimator(model, header, arrays, include_optimizer)


def _load_kind(reader: _Reader, kind: str) -> Any:
    if kind == "SequenceScaler":
        return _load_scaler(reader, SequenceScaler)
    if kind == "Pipeline":
        return _load_pipeline(reader, Pipeline, _load_kind, _steps())
    if kind == "LSTMForecaster":
        return _load_forecaster(reader, LSTMForecaster)
    load_fn: Callable = _load_layer if kind in _LAYERS else _load_estimator
    return load_fn(reader, _CLASSES[kind])


def save(model: Any, path: str | os.PathLike | BinaryIO, *,
         include_optimizer: bool = True) -> None:
    """Save a layer, a fitted estimator or scaler, or a Pipeline of them, without pickle.

    The file is a zip archive holding a JSON header (format version, class,
    constructor parameters, fitted attributes) and the arrays as ``.npy``
    entries; :func:`load` reads it back without ever unpickling anything.
    See the user guide page "Saving and deploying" for the format.

    Parameters
    ----------
    model : LSTM, GRU, RNN, LSTMClassifier, LSTMRegressor, SequenceScaler or Pipeline
        A layer, a fitted estimator or scaler, or a fitted scikit-learn
        ``Pipeline`` whose steps are fitted fastlstm estimators and scalers
        (or ``"passthrough"``); a Pipeline with any other step is refused
        with a ``TypeError`` naming the step.  The Pipeline's step names,
        ``memory`` (None or a path) and ``verbose`` travel with it (a loaded
        Pipeline caches its transformers in that ``memory`` directory when
        fitted again: check it in a file from elsewhere).
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

    A Pipeline of a scaler and an estimator is one file too:

    >>> from sklearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(fastlstm.SequenceScaler(), fastlstm.LSTMRegressor(
    ...     hidden_size=8, max_epochs=2, random_state=0)).fit(X, X[:, -1, 0])
    >>> buffer = io.BytesIO()
    >>> fastlstm.save(pipe, buffer)
    >>> loaded = fastlstm.load(io.BytesIO(buffer.getvalue()))
    >>> list(loaded.named_steps), bool((loaded.predict(X) == pipe.predict(X)).all())
    (['sequencescaler', 'lstmregressor'], True)
    """
    if not isinstance(include_optimizer, (bool, np.bool_)):
        raise TypeError(f"include_optimizer must be a bool, got {include_optimizer!r}")
    kind = type(model).__name__
    if _CLASSES.get(kind) is not type(model):
        raise TypeError(f"save supports {', '.join(_CLASSES)}; got {type(model).__name__}")
    header: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                              "fastlstm_version": __version__, "class": kind}
    arrays: dict[str, np.ndarray] = {}
    _dump(model, header, arrays, bool(include_optimizer))
    _write(path, header, arrays)


def _load(f: BinaryIO) -> Any:
    zf, size = _open(f)
    with zf:
        reader = _Reader(zf, size)
        kind = reader.header["class"]
        _check(isinstance(kind, str) and kind in _CLASSES,
               f"class {_short(kind)} is not one fastlstm loads (allowed: "
               f"{', '.join(_CLASSES)})")
        return _load_kind(reader, kind)


def load(path: str | os.PathLike | BinaryIO) -> Any:
    """Load a model written by :func:`save`, without unpickling anything.

    Only fastlstm's own classes (the layers, the estimators,
    ``SequenceScaler``) and scikit-learn's ``Pipeline`` of them are
    constructed, and only after every entry name,
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
    model : LSTM, GRU, RNN, LSTMClassifier, LSTMRegressor, SequenceScaler or Pipeline

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
