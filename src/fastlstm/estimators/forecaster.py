"""The forecaster :class:`LSTMForecaster`: windows over series, an LSTM regressor inside."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastlstm.estimators.fleet import derive_seeds, fit_fleet, forecast_fleet
from fastlstm.estimators.forecaster_core import WindowSpec, combine, fit_regressor, forecast
from fastlstm.estimators.forecaster_data import Layout, format_forecast, read_series
from fastlstm.estimators.forecaster_doc import FORECASTER_DOC
from fastlstm.estimators.forecaster_interop import ForecasterInterop
from fastlstm.estimators.regressor import LSTMRegressor
from fastlstm.train.windows import SCALINGS

__all__ = ["LSTMForecaster"]

# the forecaster's parameters the inner regressor takes as they are
_INNER = ("cell", "hidden_size", "num_layers", "dropout", "batch_size", "max_epochs",
          "learning_rate", "optimizer", "weight_decay", "clip_norm", "loss", "early_stopping",
          "n_iter_no_change", "tol", "callbacks", "shuffle", "verbose", "dtype", "n_jobs")
_FIXED = ("window", "horizon", "strategy", "scaling", "dtype", "cell", "hidden_size",
          "num_layers", "per_series")


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


class LSTMForecaster(ForecasterInterop, BaseEstimator):
    __doc__ = FORECASTER_DOC

    def __init__(
        self,
        *,
        window: int = 24,
        horizon: int = 1,
        strategy: str = "direct",
        scaling: str = "last",
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        batch_size: int = 32,
        max_epochs: int = 100,
        learning_rate: float = 5e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        clip_norm: float | None = 5.0,
        loss: str = "squared_error",
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        callbacks: list | None = None,
        warm_start: bool = False,
        shuffle: bool = True,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        dtype: str = "float32",
        per_series: bool = False,
        backend: str | None = None,
    ) -> None:
        self.window = window
        self.horizon = horizon
        self.strategy = strategy
        self.scaling = scaling
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.loss = loss
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.shuffle = shuffle
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.dtype = dtype
        self.per_series = per_series
        self.backend = backend

    # ------------------------------------------------------------ checks
    def _check_params(self) -> None:
        def fail(name: str, what: str) -> None:
            raise ValueError(f"The '{name}' parameter of LSTMForecaster must be {what}. "
                             f"Got {getattr(self, name)!r} instead.")

        for name in ("window", "horizon"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                fail(name, "an int in the range [1, inf)")
        if self.strategy not in ("direct", "recursive"):
            fail("strategy", "a str among {'direct', 'recursive'}")
        if self.scaling not in SCALINGS:
            fail("scaling", f"a str among {set(SCALINGS)}")
        for name in ("per_series", "warm_start"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                fail(name, "an instance of 'bool'")
        if self.backend not in (None, "threads", "processes", "dask"):
            fail("backend", "None, 'threads', 'processes' or 'dask'")
        if self.backend in ("processes", "dask") and not self.per_series:
            fail("backend", "None or 'threads' unless per_series=True (processes and Dask "
                 "spread the models of a fleet)")
        if self.per_series and self.callbacks:
            fail("callbacks", "None with per_series=True (a fleet trains many models at "
                 "once; use verbose for the fleet's progress)")
        try:  # the network's and the training's parameters, as the regressor checks them
            self._inner()._check_params()
        except ValueError as exc:
            raise ValueError(str(exc).replace("of LSTMRegressor", "of LSTMForecaster")) from None

    def _inner(self, random_state: Any = None, n_jobs: Any = "same") -> LSTMRegressor:
        """A new inner regressor with this forecaster's parameters."""
        params = {name: getattr(self, name) for name in _INNER}
        if n_jobs != "same":
            params["n_jobs"] = n_jobs
        if self.per_series:
            params["verbose"] = 0  # the fleet reports its progress as a whole
        return LSTMRegressor(**params, random_state=random_state, validation_split="last")

    def _future_columns(self, future_covariates: Any, xs: Any, X: Any) -> np.ndarray:
        if future_covariates is None:
            return np.zeros(0, dtype=np.intp)
        if xs is None:
            raise ValueError("future_covariates was given without covariates X.")
        n_cov = xs[0].shape[1]
        names = None
        first = X[0] if isinstance(X, (list, tuple)) else X
        if hasattr(first, "columns"):
            names = list(first.columns)
        elif hasattr(first, "name") and hasattr(first, "to_numpy"):
            names = [first.name]
        items = ([future_covariates] if isinstance(future_covariates, (str, numbers.Integral))
                 else list(future_covariates))
        cols = []
        for item in items:
            if names is not None and item in names:
                cols.append(names.index(item))
            elif _is_int(item) and -n_cov <= item < n_cov:
                cols.append(int(item) % n_cov)
            else:
                raise ValueError(
                    f"future_covariates names {item!r}, which is not a covariate of X (its "
                    f"columns are {names if names is not None else list(range(n_cov))}): "
                    "give column names of X or column positions.")
        return np.unique(np.asarray(cols, dtype=np.intp))

    # ------------------------------------------------------------ fit
    def fit(self, y: Any, X: Any = None, *, future_covariates: Any = None) -> LSTMForecaster:
        """Fit the forecaster on one series, a list of series, or a panel.

        Parameters
        ----------
        y : array-like, pandas Series/DataFrame, list of them, or MultiIndex DataFrame
            The series to learn: a 1D array or Series (one univariate
            series), a 2D array ``(n_timesteps, n_targets)`` or DataFrame (one
            multivariate series), a list of such series (one model for all,
            or one each with ``per_series=True``), or a ``(series, time)``
            MultiIndex DataFrame.
        X : same structure as y, optional
            Covariates, one row per row of ``y``.  All of them enter the
            input window; those named in ``future_covariates`` also enter
            for the forecast steps, where they must then be given to
            :meth:`predict`.
        future_covariates : list of str or int, optional
            The covariates known in the future: column names of a DataFrame
            ``X``, or column positions.

        Returns
        -------
        self : LSTMForecaster

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMForecaster
        >>> y = np.sin(np.arange(120) / 5) + np.arange(120) / 20
        >>> f = LSTMForecaster(window=12, horizon=3, hidden_size=8, max_epochs=30,
        ...                    random_state=0).fit(y)
        >>> f.predict().shape
        (3,)
        """
        self._check_params()
        continuing = self.warm_start is True and hasattr(self, "spec_")
        if continuing:
            changed = [a for a in _FIXED if getattr(self, a) != self._fixed[a]]
            if changed:
                raise ValueError(f"Cannot continue training with changed {', '.join(changed)}; "
                                 "fit a new model (warm_start=False).")
        ys, xs, layout = read_series(y, X)
        future_cols = self._future_columns(future_covariates, xs, X)
        n_cov = 0 if xs is None else xs[0].shape[1]
        if self.strategy == "recursive" and n_cov > len(future_cols):
            raise ValueError(
                "strategy='recursive' feeds each forecast back as the next input, so every "
                "covariate must be known in the future: name them all in future_covariates, "
                "or use strategy='direct' (which reads past-only covariates in the window).")
        steps = self.horizon if self.strategy == "direct" else 1
        spec = WindowSpec(self.window, steps, ys[0].shape[1], n_cov, future_cols,
                          str(self.dtype))
        old = self.spec_ if continuing else spec
        if (spec.n_targets, spec.n_covariates) != (old.n_targets, old.n_covariates) or (
                not np.array_equal(spec.future_columns, old.future_columns)):
            raise ValueError("Cannot continue training on series with other targets or "
                             "covariates than the first fit's.")
        series = combine(ys, xs)
        fraction = float(self.validation_fraction) if self.early_stopping else None
        if self.per_series:
            if continuing and len(series) != len(self.models_):
                raise ValueError(f"Cannot continue training a fleet of {len(self.models_)} "
                                 f"models on {len(series)} series.")
            old = list(zip(self.models_, self.scalings_, strict=True)) if continuing else None
            seeds = derive_seeds(self.random_state, len(series))
            models, scalings = fit_fleet(self, series, spec, seeds, fraction, old)
            self.models_, self.scalings_ = models, scalings
        else:
            if continuing:
                inner, scaling = self.regressor_, self.scaling_
                inner.set_params(**{n: getattr(self, n) for n in _INNER}, warm_start=True)
            else:
                rs = check_random_state(self.random_state)
                inner = self._inner(random_state=rs.randint(np.iinfo(np.int32).max))
                scaling = None
            try:
                inner, scaling = fit_regressor(inner, series, spec, scaling, self.scaling,
                                               fraction)
            except KeyboardInterrupt:
                # the inner model kept its last complete step: usable, published
                self._publish(inner, scaling, series, spec, layout)
                raise
            self._publish(inner, scaling, series, spec, layout)
            return self
        self._set_common(series, spec, layout)
        return self

    def _publish(self, inner: Any, scaling: Any, series: list, spec: WindowSpec,
                 layout: Layout) -> None:
        self.regressor_, self.scaling_ = inner, scaling
        for name in ("loss_curve_", "best_loss_", "n_iter_", "history_", "validation_losses_",
                     "validation_scores_", "best_validation_score_"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))
            elif hasattr(self, name):
                delattr(self, name)
        self._set_common(series, spec, layout)

    def _set_common(self, series: list, spec: WindowSpec, layout: Layout) -> None:
        self.spec_ = spec
        self.layout_ = layout
        self.tails_ = np.stack([s[len(s) - spec.window:] for s in series])
        self.n_series_ = len(series)
        self._fixed = {a: getattr(self, a) for a in _FIXED}

    # ------------------------------------------------------------ predict
    def predict(self, horizon: int | None = None, y: Any = None, X: Any = None) -> Any:
        """Forecast ``horizon`` steps after each training series, or after ``y``.

        Parameters
        ----------
        horizon : int, optional
            Steps to forecast (default: the fitted ``horizon``).  With
            ``strategy="direct"`` at most the fitted horizon; recursive
            forecasts go as far as asked.
        y : same structure as in fit, optional
            Context to continue instead of the training series: at least
            ``window`` rows per series (the last ``window`` are read).  For a
            fleet, one series per model, in the order of fit.
        X : same structure as y, optional
            Covariates.  With ``y``: its rows, then (if the model has future
            covariates) one row per forecast step.  Without ``y``: only the
            forecast steps' rows.  Direct models need the fitted horizon's
            rows of future covariates whatever ``horizon`` is asked for;
            past-only columns of forecast rows are not read (NaN is fine).

        Returns
        -------
        forecast : ndarray, pandas Series/DataFrame, list or MultiIndex DataFrame
            The container of ``y`` (of the training ``y`` without it):
            ``(horizon,)`` or ``(horizon, n_targets)`` arrays, pandas objects
            whose index continues the series', a list of those, or a panel.

        Examples
        --------
        >>> import numpy as np
        >>> import pandas as pd
        >>> from fastlstm import LSTMForecaster
        >>> index = pd.period_range("1900", periods=80, freq="Y")
        >>> y = pd.Series(np.sin(np.arange(80) / 3), index=index, name="level")
        >>> f = LSTMForecaster(window=10, horizon=4, hidden_size=8, max_epochs=5,
        ...                    random_state=0).fit(y)
        >>> f.predict(2).index
        PeriodIndex(['1980', '1981'], dtype='period[Y-DEC]')
        >>> f.predict(3, y=y[:50]).index[0]
        Period('1950', 'Y-DEC')
        """
        check_is_fitted(self, "spec_")
        spec = self.spec_
        h = self.horizon if horizon is None else horizon
        if not _is_int(h) or h < 1:
            raise ValueError(f"horizon must be an int >= 1; got {h!r}.")
        if self.strategy == "direct" and h > spec.steps:
            raise ValueError(f"horizon={h} is beyond the fitted horizon ({spec.steps}) of "
                             "this direct forecaster: refit with a larger horizon, or use "
                             "strategy='recursive'.")
        n_future = (spec.steps if self.strategy == "direct" else h) if len(
            spec.future_columns) else 0
        tails, future, layout = self._context(y, X, n_future)
        if self.per_series:
            if len(tails) != len(self.models_):
                raise ValueError(f"y holds {len(tails)} series, but this fleet has "
                                 f"{len(self.models_)} models (one per series of fit).")
            out = forecast_fleet(self, tails, future, h)
        else:
            out = forecast(self.regressor_, self.scaling_, spec, tails, future, h,
                           self.strategy)
        return format_forecast(list(out), layout)

    def _context(self, y: Any, X: Any, n_future: int) -> tuple:
        spec = self.spec_
        k, c = spec.n_targets, spec.n_covariates
        if y is None:
            layout = self.layout_
            tails = self.tails_
            future = None
            if n_future:
                if X is None:
                    raise ValueError(f"This forecaster reads covariates known in the future: "
                                     f"pass X with their {n_future} forecast rows.")
                xs, _, x_layout = read_series(X, name="X")
                if layout.kind == "panel" and x_layout.keys != layout.keys:
                    raise ValueError(f"X's series {x_layout.keys!r} are not the fitted series "
                                     f"{layout.keys!r}.")
                if len(xs) != len(tails):
                    raise ValueError(f"X holds {len(xs)} series; the model continues "
                                     f"{len(tails)}.")
                self._check_width(xs, c)
                futures = combine([np.zeros((0, k))] * len(xs), xs, n_rows=[n_future] * len(xs),
                                  allow_nan_past=True, future_columns=spec.future_columns)
                future = np.stack([f[:, k:] for f in futures])
            return tails, future, layout
        ys, xs, layout = read_series(y, X)
        if ys[0].shape[1] != k:
            raise ValueError(f"y has {ys[0].shape[1]} target columns; the model was fitted "
                             f"on {k}.")
        if c and xs is None:
            raise ValueError(f"The model was fitted with {c} covariates: pass X with y.")
        if not c and xs is not None:
            raise ValueError("The model was fitted without covariates, but X was given.")
        for i, s in enumerate(ys):
            if len(s) < spec.window:
                raise ValueError(f"y{f'[{i}]' if len(ys) > 1 else ''} has {len(s)} rows; the "
                                 f"forecast reads the last window={spec.window}.")
        if xs is not None:
            self._check_width(xs, c)
        full = combine(ys, xs, n_rows=None if xs is None else [len(s) + n_future for s in ys],
                       allow_nan_past=True, future_columns=spec.future_columns)
        tails = np.stack([f[len(s) - spec.window:len(s)] for f, s in zip(full, ys, strict=True)])
        future = None
        if n_future:
            future = np.stack([f[len(s):, k:] for f, s in zip(full, ys, strict=True)])
        return tails, future, layout

    @staticmethod
    def _check_width(xs: list, c: int) -> None:
        if xs[0].shape[1] != c:
            raise ValueError(f"X has {xs[0].shape[1]} covariates; the model was fitted on {c}.")

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.estimator_type = "forecaster"
        tags.requires_fit = True
        return tags
