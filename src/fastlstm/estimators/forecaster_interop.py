"""The forecaster's deployment methods: ``to_onnx`` and ``predict_step`` streaming."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fastlstm.runtime import hooks

__all__ = ["ForecasterInterop"]


class ForecasterInterop:
    """``to_onnx`` and ``predict_step`` of :class:`LSTMForecaster`."""

    def to_onnx(self, path: str | os.PathLike | None = None, *,
                lengths: bool | None = None) -> Any:
        """Export the fitted forecaster as an ONNX model, window scaling included.

        Needs the optional ``onnx`` package.  Inputs: ``y``, float64
        ``(batch, window, n_targets)``, the last ``window`` values of each
        series in their own units; with covariates, ``X``, float64
        ``(batch, n_rows, n_covariates)``: the window's rows, then (with
        future covariates) the forecast rows, whose past-only columns are
        not read.  Output: ``forecast``, float64 ``(batch, steps,
        n_targets)``: the next ``horizon`` values (direct), or the next one
        (recursive: append it to ``y`` and run again for more).  The
        per-window reference and the fitted spreads are nodes of the graph,
        before and after the network, which computes in float32.  A fleet
        (``per_series=True``) is not exported as one graph.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the model there.
        lengths : None or False
            Windows all have ``window`` steps: there is no ``lengths`` input.

        Returns
        -------
        model : onnx.ModelProto

        Examples
        --------
        >>> import numpy as np
        >>> import onnxruntime
        >>> from fastlstm import LSTMForecaster
        >>> y = np.sin(np.arange(100) / 4) + np.arange(100) / 10
        >>> f = LSTMForecaster(window=12, horizon=3, hidden_size=8, max_epochs=5,
        ...                    random_state=0).fit(y)
        >>> session = onnxruntime.InferenceSession(f.to_onnx().SerializeToString())
        >>> (out,) = session.run(None, {"y": y[-12:].reshape(1, 12, 1)})
        >>> bool(np.allclose(out[0, :, 0], f.predict(), rtol=1e-5))
        True
        """
        if lengths:
            raise ValueError("A forecaster's windows all have `window` steps: its graph has "
                             "no lengths input (lengths must be None or False).")
        return hooks.call("forecaster_to_onnx", self, path)

    def predict_step(self, y_t: Any, state: Any = None, *, x_t: Any = None,
                     x_future: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Append one observation to each series and forecast from there.

        For streaming: starting from ``state=None`` (the end of the training
        series) and passing back the returned state, the forecast after each
        call is what :meth:`predict` gives for the series extended by the
        observations so far.  The state is the last ``window`` rows of each
        series (the per-window scaling depends on the whole window, so each
        call runs the network over it: O(window) per step).

        Parameters
        ----------
        y_t : array-like of shape (n_series, n_targets) or (n_series,)
            The new value of each series.
        state : ndarray of shape (n_series, window, n_targets + n_covariates), optional
            As returned by the previous call; None starts from the training
            series' ends.
        x_t : array-like of shape (n_series, n_covariates), optional
            The covariates of the new row (needed with covariates).
        x_future : array-like of shape (n_series, n_future, n_covariates), optional
            The forecast rows' covariates, for a model with future
            covariates (as ``X`` of :meth:`predict` without ``y``).

        Returns
        -------
        forecast : ndarray of shape (n_series, horizon, n_targets)
            The fitted ``horizon``'s forecast of every series.
        state : ndarray
            The new window of each series (a fresh array).

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMForecaster
        >>> y = np.sin(np.arange(100) / 4)
        >>> f = LSTMForecaster(window=12, horizon=2, hidden_size=8, max_epochs=5,
        ...                    random_state=0).fit(y[:90])
        >>> state = None
        >>> for value in y[90:95]:
        ...     forecast, state = f.predict_step([value], state)
        >>> bool(np.allclose(forecast[0, :, 0], f.predict(y=y[:95])))
        True
        """
        from sklearn.utils.validation import check_is_fitted

        from fastlstm.estimators.fleet import forecast_fleet
        from fastlstm.estimators.forecaster_core import forecast

        check_is_fitted(self, "spec_")
        spec = self.spec_
        k, c = spec.n_targets, spec.n_covariates
        window = self.tails_ if state is None else np.asarray(state, dtype=np.float64)
        n = window.shape[0] if window.ndim == 3 else -1
        if window.shape != (n, spec.window, k + c):
            raise ValueError(f"state must be the array predict_step returned, of shape "
                             f"(n_series, {spec.window}, {k + c}); got {window.shape}.")
        y = np.asarray(y_t, dtype=np.float64)
        y = y.reshape(n, 1) if y.ndim == 1 and k == 1 and y.size == n else y
        if y.shape != (n, k) or not np.isfinite(y).all():
            raise ValueError(f"y_t must be ({n}, {k}) finite values (one row per series); "
                             f"got shape {np.shape(y_t)}.")
        row = np.empty((n, k + c))
        row[:, :k] = y
        if c:
            if x_t is None:
                raise ValueError(f"This forecaster reads {c} covariates: pass x_t.")
            x = np.asarray(x_t, dtype=np.float64)
            if x.shape != (n, c) or not np.isfinite(x).all():
                raise ValueError(f"x_t must be ({n}, {c}) finite covariates; got shape "
                                 f"{x.shape}.")
            row[:, k:] = x
        new_state = np.concatenate([window[:, 1:], row[:, None]], axis=1)
        future = None
        h = spec.steps if self.strategy == "direct" else self.horizon
        if len(spec.future_columns):
            if x_future is None:
                raise ValueError("This forecaster reads covariates known in the future: "
                                 "pass x_future.")
            need = spec.steps if self.strategy == "direct" else h
            future = np.asarray(x_future, dtype=np.float64)
            if future.ndim != 3 or future.shape[0] != n or future.shape[1] < need or (
                    future.shape[2] != c) or not np.isfinite(
                        future[:, :need, spec.future_columns]).all():
                raise ValueError(f"x_future must be ({n}, {need}, {c}) with finite future "
                                 f"covariates; got shape {future.shape}.")
        if self.per_series:
            if n != len(self.models_):
                raise ValueError(f"state holds {n} series; this fleet has "
                                 f"{len(self.models_)} models.")
            out = forecast_fleet(self, new_state, future, h)
        else:
            out = forecast(self.regressor_, self.scaling_, spec, new_state, future, h,
                           self.strategy)
        return out[:, :self.horizon], new_state
