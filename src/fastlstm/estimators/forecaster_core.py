"""A forecaster's work on plain arrays: checked series, training windows, forecasts.

Everything here takes float64 arrays ``(n_timesteps, n_targets +
n_covariates)`` (targets first) and an inner :class:`LSTMRegressor`; the
estimator (:mod:`fastlstm.estimators.forecaster`) handles containers and
parameters, the fleet (:mod:`fastlstm.estimators.fleet`) runs this once per
series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastlstm.estimators.memory import check_estimator_memory
from fastlstm.train.windows import (
    WindowScaling,
    fit_scaling,
    n_windows,
    undo_scaling,
    window_arrays,
    window_views,
)

__all__ = ["WindowSpec", "combine", "fit_regressor", "forecast", "training_windows"]


@dataclass
class WindowSpec:
    """The shape of a forecaster's windows.

    Attributes
    ----------
    window : int
        Input rows.
    steps : int
        Rows predicted at once: the horizon (direct) or 1 (recursive).
    n_targets, n_covariates : int
    future_columns : ndarray of int
        The covariates (indices among them) known in the future.
    dtype : str
    """

    window: int
    steps: int
    n_targets: int
    n_covariates: int
    future_columns: np.ndarray
    dtype: str

    @property
    def n_steps(self) -> int:
        """Steps of the network's input."""
        return self.window + (self.steps if len(self.future_columns) else 0)

    @property
    def n_features(self) -> int:
        """Features per step of the network's input."""
        return self.n_targets + self.n_covariates + (1 if len(self.future_columns) else 0)


def combine(ys: list[np.ndarray], xs: list[np.ndarray] | None, *, n_rows: list[int] | None = None,
            allow_nan_past: bool = False, future_columns: np.ndarray | None = None
            ) -> list[np.ndarray]:
    """Targets and covariates side by side, checked for NaN and alignment.

    Parameters
    ----------
    ys : list of ndarray (n_timesteps_i, n_targets)
    xs : list of ndarray (n_rows_i, n_covariates) or None
    n_rows : list of int, optional
        The rows each ``xs[i]`` must have (default: those of ``ys[i]``).
    allow_nan_past : bool
        Allow NaN in the past-only covariates of rows after the targets'
        end (forecast rows, where they are not read).
    future_columns : ndarray of int, optional
        The future covariates, for ``allow_nan_past``.

    Returns
    -------
    series : list of ndarray (n_rows_i, n_targets + n_covariates)
        Rows after a series' targets (forecast rows) have NaN targets.
    """
    out = []
    for i, y in enumerate(ys):
        where = f" (series {i})" if len(ys) > 1 else ""
        if not np.isfinite(y).all():
            raise ValueError(f"y contains NaN or infinity{where}: fill or drop the missing "
                             "values (e.g. y.ffill() or y.interpolate()) before fitting.")
        if xs is None:
            out.append(y)
            continue
        x = xs[i]
        want = len(y) if n_rows is None else n_rows[i]
        if len(x) != want:
            more = (" and then one per forecast step that needs the covariates known in the "
                    "future") if want > len(y) else ""
            raise ValueError(f"X has {len(x)} rows{where}, but it must have {want}: one row "
                             f"per row of y{more}.")
        past, future = x[:len(y)], x[len(y):]
        if not np.isfinite(past).all():
            raise ValueError(f"X contains NaN or infinity{where}: fill the missing "
                             "covariates first.")
        read = future if not allow_nan_past else future[:, future_columns]
        if not np.isfinite(read).all():
            raise ValueError(f"The future rows of X contain NaN or infinity{where} in "
                             "covariates known in the future.")
        full = np.full((len(x), y.shape[1] + x.shape[1]), np.nan)
        full[:len(y), :y.shape[1]] = y
        full[:, y.shape[1]:] = x
        out.append(full)
    return out


def training_windows(series: list[np.ndarray], spec: WindowSpec, scaling: WindowScaling,
                     validation_fraction: float | None, regressor: Any
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Every training window of every series, copied once, and the held-out ones.

    With ``validation_fraction``, the last ``ceil(fraction * n_windows)``
    windows of each series are held out, and the ``steps - 1`` windows
    before them are dropped so that no training target is a validation
    target.

    Returns
    -------
    X, y, X_val, y_val : ndarray
        Network inputs and scaled targets (``X_val``, ``y_val`` None without
        validation).
    """
    counts = [n_windows(len(s), spec.window, spec.steps) for s in series]
    for i, (s, n) in enumerate(zip(series, counts, strict=True)):
        if n < 1:
            where = f"Series {i} of y" if len(series) > 1 else "y"
            raise ValueError(
                f"{where} has {len(s)} time steps: too short for window={spec.window} and "
                f"{spec.steps} step(s) ahead, which need at least "
                f"{spec.window + spec.steps}. Use a smaller window or a longer series.")
    n_val = [0] * len(series)
    n_train = list(counts)
    if validation_fraction is not None:
        n_val = [math.ceil(validation_fraction * n) for n in counts]
        n_train = [n - v - (spec.steps - 1) for n, v in zip(counts, n_val, strict=True)]
        for i, (n, t) in enumerate(zip(counts, n_train, strict=True)):
            if t < 1:
                raise ValueError(
                    f"Series {i} has {n} windows: too few to hold out the last "
                    f"validation_fraction={validation_fraction} of them for early stopping "
                    "and still train on some. Use a smaller validation_fraction or window, "
                    "a longer series, or early_stopping=False.")
        if sum(n_val) < 2:
            raise ValueError("The validation set is too small (fewer than 2 windows). "
                             "Increase 'validation_fraction' or the length of the series.")
    dtype = np.dtype(spec.dtype)
    width = spec.steps * spec.n_targets

    def alloc(n: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (n, spec.n_steps, spec.n_features)
        # refuse what cannot fit before allocating it
        check_estimator_memory(regressor, np.broadcast_to(np.zeros((), dtype), shape),
                               fitting=True, n_outputs=width)
        return np.empty(shape, dtype=dtype), np.empty((n, width))

    X, Y = alloc(sum(n_train))
    X_val, Y_val = alloc(sum(n_val)) if validation_fraction is not None else (None, None)
    at = at_val = 0
    for s, t, v in zip(series, n_train, n_val, strict=True):
        views = window_views(s, spec.window, spec.steps)
        window_arrays(views[:t], spec.n_targets, spec.window, spec.steps, scaling,
                      future_columns=spec.future_columns, dtype=dtype,
                      out=(X[at:at + t], Y[at:at + t]))
        at += t
        if v:
            window_arrays(views[len(views) - v:], spec.n_targets, spec.window, spec.steps,
                          scaling, future_columns=spec.future_columns, dtype=dtype,
                          out=(X_val[at_val:at_val + v], Y_val[at_val:at_val + v]))
            at_val += v
    return X, Y, X_val, Y_val


def fit_regressor(regressor: Any, series: list[np.ndarray], spec: WindowSpec,
                  scaling: WindowScaling | None, scaling_method: str,
                  validation_fraction: float | None) -> tuple[Any, WindowScaling]:
    """Fit ``regressor`` on the windows of ``series``; returns it and the scaling.

    ``scaling`` None fits a new one on ``series`` (else it is kept, for a
    warm start).
    """
    if scaling is None:
        scaling = fit_scaling(series, spec.n_targets, spec.window, scaling_method)
    X, Y, X_val, Y_val = training_windows(series, spec, scaling, validation_fraction,
                                          regressor)
    regressor.fit(X, Y, X_val=X_val, y_val=Y_val)
    return regressor, scaling


def forecast(regressor: Any, scaling: WindowScaling, spec: WindowSpec, tails: np.ndarray,
             future: np.ndarray | None, horizon: int, strategy: str) -> np.ndarray:
    """Forecast ``horizon`` steps after each series' tail.

    Parameters
    ----------
    tails : ndarray of shape (n_series, window, n_targets + n_covariates)
        The last ``window`` rows of each series.
    future : ndarray of shape (n_series, n_future, n_covariates) or None
        Covariates of the forecast rows (those known in the future are
        read): ``spec.steps`` rows (direct) or ``horizon`` (recursive).
    horizon : int
    strategy : {"direct", "recursive"}

    Returns
    -------
    forecast : ndarray of shape (n_series, horizon, n_targets)
    """
    n, window, width = tails.shape
    k = spec.n_targets
    dtype = np.dtype(spec.dtype)

    def predict(views: np.ndarray) -> np.ndarray:
        inputs, _, ref = window_arrays(views, k, window, spec.steps, scaling,
                                       future_columns=spec.future_columns, dtype=dtype,
                                       with_targets=False)
        out = np.asarray(regressor.predict(inputs)).reshape(n, -1)
        return undo_scaling(out, ref, scaling)

    if strategy == "direct":
        views = np.zeros((n, window + spec.steps, width))
        views[:, :window] = tails
        if future is not None:
            views[:, window:, k:] = future[:, :spec.steps]
        return predict(views)[:, :horizon]
    history = np.zeros((n, window + horizon, width))
    history[:, :window] = tails
    if future is not None:
        history[:, window:, k:] = future[:, :horizon]
    result = np.empty((n, horizon, k))
    for t in range(horizon):  # each prediction is the next step's last input
        views = history[:, t:t + window + 1].copy()
        step = predict(views)[:, 0]
        result[:, t] = step
        history[:, window + t, :k] = step
    return result
