"""The containers a forecaster reads and writes: arrays, pandas objects, lists and panels.

:func:`read_series` turns ``y`` (and covariates ``X``) into float64 arrays,
one per series, and a :class:`Layout` saying how to give a forecast back in
the container the user passed: a NumPy array, a pandas Series or DataFrame
whose index continues, a list, or a ``(series, time)`` MultiIndex frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Layout", "continue_index", "format_forecast", "index_spec", "read_series"]

KINDS = ("array1d", "array2d", "series", "frame", "list", "panel")


@dataclass
class Layout:
    """How ``y`` came in, so that a forecast goes out the same way.

    Attributes
    ----------
    kind : str
        One of ``array1d``, ``array2d``, ``series``, ``frame``, ``list``,
        ``panel``.
    n_targets : int
    target_names : list or None
        The DataFrame's columns, or ``[name]`` of a Series.
    items : list of str or None
        For a list: the kind of each element (``array1d``, ``array2d``,
        ``series``, ``frame``).
    keys : list or None
        A panel's series keys (its first index level), in order.
    level_names : list or None
        A panel's index level names.
    """

    kind: str
    n_targets: int
    target_names: list | None = None
    items: list | None = None
    keys: list | None = None
    level_names: list | None = None
    indexes: list = field(default_factory=list)  # per series: its index_spec or None


def _is_pandas(obj: Any) -> bool:
    return hasattr(obj, "to_numpy") and hasattr(obj, "index")


def _values(obj: Any, name: str, what: str) -> np.ndarray:
    raw = obj.to_numpy() if _is_pandas(obj) else obj
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must hold numbers ({what}); converting it to float failed: "
                        f"{exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1D or 2D ({what}: time along the first axis); got "
                         f"an array of shape {arr.shape}. For several series pass a list.")
    if not arr.shape[0]:
        raise ValueError(f"{name} is empty ({what}).")
    return arr


def _one(obj: Any, name: str, what: str) -> tuple[np.ndarray, str, Any, Any]:
    """(values, kind, names, index) of one series."""
    import pandas as pd

    if isinstance(obj, pd.Series):
        return _values(obj, name, what), "series", [obj.name], index_spec(obj.index)
    if isinstance(obj, pd.DataFrame):
        return _values(obj, name, what), "frame", list(obj.columns), index_spec(obj.index)
    arr = _values(obj, name, what)
    return arr, "array1d" if np.ndim(obj) == 1 else "array2d", None, None


def _check_aligned(y: Any, X: Any, where: str) -> None:
    """pandas ``y`` and ``X``: X's first rows must carry y's index."""
    if not (_is_pandas(y) and _is_pandas(X)) or len(X) < len(y):
        return  # row counts are checked with the values
    if not X.index[:len(y)].equals(y.index):
        raise ValueError(f"X's index does not match y's{where}: the covariates are read row "
                         "by row with y, so X must have y's index (then, for forecasts, the "
                         "forecast rows). Reindex X like y (X.reindex(y.index)).")


def _panel_groups(frame: Any, name: str) -> tuple[list, list, list]:
    index = frame.index
    if index.nlevels != 2:
        raise ValueError(f"{name} is a panel whose index has {index.nlevels} levels; a "
                         "forecaster reads two, (series, time).")
    keys = list(dict.fromkeys(index.get_level_values(0)))
    parts, times = [], []
    for key in keys:
        part = frame.xs(key, level=0, drop_level=True)
        parts.append(part)
        times.append(index_spec(part.index))
    return keys, parts, times


def read_series(y: Any, X: Any = None, *, name: str = "y") -> tuple[list, list | None, Layout]:
    """The series of ``y`` and their covariates ``X``, with the layout of ``y``.

    Parameters
    ----------
    y : array-like, pandas Series/DataFrame, list of them, or a MultiIndex DataFrame
        One series (time first), several (a list: one global model), or a
        ``(series, time)`` panel.
    X : same structure as y, optional
        Covariates, row for row with ``y`` (at least as many rows; the rows
        after the series' end are returned too, for forecasts).
    name : str
        How to name ``y`` in messages.

    Returns
    -------
    targets : list of ndarray of shape (n_timesteps_i, n_targets)
    covariates : list of ndarray of shape (n_rows_i, n_covariates) or None
    layout : Layout

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.estimators.forecaster_data import read_series
    >>> ys, xs, layout = read_series([np.arange(5.0), np.arange(7.0)])
    >>> [y.shape for y in ys], layout.kind
    ([(5, 1), (7, 1)], 'list')
    """
    from fastlstm.train.panels import is_panel

    what = "one series: time along the first axis"
    if is_panel(y):
        frame = y.to_frame() if y.ndim == 1 else y
        keys, parts, times = _panel_groups(frame, name)
        ys = [_values(p, f"{name}[{k!r}]", what) for k, p in zip(keys, parts, strict=True)]
        layout = Layout("panel", ys[0].shape[1], target_names=list(frame.columns), keys=keys,
                        level_names=list(frame.index.names), indexes=times)
        xs = None
        if X is not None:
            if not is_panel(X):
                raise TypeError(f"{name} is a (series, time) panel, so X must be one too "
                                f"(got {type(X).__name__}).")
            xframe = X.to_frame() if X.ndim == 1 else X
            xkeys, xparts, _ = _panel_groups(xframe, "X")
            if xkeys[:len(keys)] != keys or len(xkeys) != len(keys):
                raise ValueError(f"X's series {xkeys!r} are not {name}'s {keys!r}.")
            xs = [_values(p, f"X[{k!r}]", what) for k, p in zip(keys, xparts, strict=True)]
            for k, part, xpart in zip(keys, parts, xparts, strict=True):
                _check_aligned(part, xpart, f" (series {k!r})")
    elif isinstance(y, (list, tuple)):
        if not len(y):
            raise ValueError(f"{name} is an empty list: pass at least one series.")
        read = [_one(s, f"{name}[{i}]", what) for i, s in enumerate(y)]
        ys = [r[0] for r in read]
        layout = Layout("list", ys[0].shape[1], target_names=read[0][2],
                        items=[r[1] for r in read], indexes=[r[3] for r in read])
        xs = None
        if X is not None:
            if not isinstance(X, (list, tuple)) or len(X) != len(y):
                raise ValueError(f"{name} is a list of {len(y)} series, so X must be a list "
                                 "of as many covariate arrays (one per series).")
            xs = [_one(x, f"X[{i}]", what)[0] for i, x in enumerate(X)]
            for i, (s, x) in enumerate(zip(y, X, strict=True)):
                _check_aligned(s, x, f" (series {i})")
    else:
        arr, kind, names, index = _one(y, name, what)
        ys = [arr]
        layout = Layout(kind, arr.shape[1], target_names=names, indexes=[index])
        xs = None if X is None else [_one(X, "X", what)[0]]
        if X is not None:
            _check_aligned(y, X, "")
    widths = {a.shape[1] for a in ys}
    if len(widths) > 1:
        raise ValueError(f"The series of {name} have different numbers of columns "
                         f"({sorted(widths)}): every series needs the same targets.")
    if xs is not None:
        cwidths = {a.shape[1] for a in xs}
        if len(cwidths) > 1:
            raise ValueError(f"The covariates X have different numbers of columns per series "
                             f"({sorted(cwidths)}).")
    return ys, xs, layout


def index_spec(index: Any) -> list | None:
    """What continuing ``index`` needs, as JSON values (None for no index).

    ``["range", last, step]`` for integer indexes, ``["datetime", last,
    freq, tz]`` and ``["period", last, freq]``; ``["none", reason]`` for an
    index that cannot be continued (the reason is raised by
    :func:`continue_index`).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastlstm.estimators.forecaster_data import index_spec
    >>> index_spec(pd.RangeIndex(0, 10, 2))
    ['range', 8, 2]
    >>> index_spec(pd.period_range("2000", periods=3, freq="Y"))
    ['period', '2002', 'Y-DEC']
    """
    import pandas as pd

    if index is None:
        return None
    if isinstance(index, pd.PeriodIndex):
        return ["period", str(index[-1]), index.freqstr]
    if isinstance(index, pd.DatetimeIndex):
        freq = index.freq or (pd.infer_freq(index) if len(index) >= 3 else None)
        if freq is None:
            return ["none", "the series' DatetimeIndex has no frequency to continue the "
                    "forecast's index with: give it one (e.g. y.asfreq('W'))"]
        offset = pd.tseries.frequencies.to_offset(freq)
        return ["datetime", index[-1].tz_localize(None).isoformat(), offset.freqstr,
                None if index.tz is None else str(index.tz)]
    values = np.asarray(index)
    if values.dtype.kind in "iu":
        step = int(values[-1] - values[-2]) if len(values) >= 2 else 1
        return ["range", int(values[-1]), step]
    return ["none", f"an index of type {type(index).__name__} ({values.dtype}) cannot be "
            "continued: use a RangeIndex, an integer index, a DatetimeIndex or a PeriodIndex"]


def continue_index(spec: list, horizon: int) -> Any:
    """The ``horizon`` index values after the end of the index of ``spec``.

    Raises
    ------
    ValueError
        If the index cannot be continued (no frequency, not a time index).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastlstm.estimators.forecaster_data import continue_index, index_spec
    >>> list(continue_index(index_spec(pd.RangeIndex(0, 10, 2)), 2))
    [10, 12]
    >>> continue_index(index_spec(pd.period_range("2000", periods=3, freq="Y")), 2)
    PeriodIndex(['2003', '2004'], dtype='period[Y-DEC]')
    """
    import pandas as pd

    kind = spec[0]
    if kind == "period":
        return pd.period_range(pd.Period(spec[1], freq=spec[2]) + 1, periods=horizon,
                               freq=spec[2])
    if kind == "datetime":
        last = pd.Timestamp(spec[1])
        if spec[3] is not None:
            last = last.tz_localize(spec[3])
        return pd.date_range(last, periods=horizon + 1, freq=spec[2])[1:]
    if kind == "range":
        return pd.RangeIndex(spec[1] + spec[2], spec[1] + spec[2] * (horizon + 1), spec[2])
    raise ValueError(f"Cannot give the forecast an index: {spec[1]}.")


def format_forecast(forecasts: list[np.ndarray], layout: Layout) -> Any:
    """Forecasts ``(horizon, n_targets)`` per series, in the container of ``layout``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.estimators.forecaster_data import Layout, format_forecast
    >>> format_forecast([np.ones((2, 1))], Layout("array1d", 1, indexes=[None]))
    array([1., 1.])
    """
    import pandas as pd

    def one(f: np.ndarray, kind: str, index: Any) -> Any:
        h = f.shape[0]
        if kind == "array1d":
            return f[:, 0]
        if kind == "array2d":
            return f
        new_index = continue_index(index, h)
        if kind == "series":
            return pd.Series(f[:, 0], index=new_index, name=layout.target_names[0])
        return pd.DataFrame(f, index=new_index, columns=layout.target_names)

    if layout.kind == "list":
        return [one(f, k, i) for f, k, i in zip(forecasts, layout.items, layout.indexes,
                                                strict=True)]
    if layout.kind == "panel":
        frames = []
        for key, f, index in zip(layout.keys, forecasts, layout.indexes, strict=True):
            times = continue_index(index, f.shape[0])
            frames.append(pd.DataFrame(
                f, columns=layout.target_names,
                index=pd.MultiIndex.from_arrays([[key] * len(times), times],
                                                names=layout.level_names)))
        return pd.concat(frames)
    return one(forecasts[0], layout.kind, layout.indexes[0])
