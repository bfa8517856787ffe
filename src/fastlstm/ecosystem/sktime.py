"""The sktime adapter: :class:`SktimeLSTMForecaster`, an sktime ``BaseForecaster``.

It fits a :class:`~fastlstm.LSTMForecaster` on an sktime series (``y`` a
``pd.Series`` or ``pd.DataFrame``, exogenous ``X`` a ``pd.DataFrame`` with the
same index) and forecasts the horizon ``fh`` in sktime's conventions: the
index of the prediction is ``fh`` made absolute from the cutoff, for any
index sktime allows (integer, range, period, datetime).  Panels and
hierarchies are left to sktime's own vectorization, which fits one
forecaster per series (its ``backend:parallel`` configuration spreads them).
``X`` is exogenous data known in the future, as sktime treats it: every
column enters the input window and, for each forecast step, the row of
that step, which :meth:`predict` must be given.

Needs the optional ``sktime`` package: ``pip install 'fastlstm[sktime]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import pandas as pd
    from sktime.forecasting.base import BaseForecaster, ForecastingHorizon
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "fastlstm.ecosystem.sktime needs the optional 'sktime' package: "
        "pip install 'fastlstm[sktime]'") from exc

from fastlstm.estimators.forecaster import LSTMForecaster

__all__ = ["SktimeLSTMForecaster"]

# the LSTMForecaster parameters the adapter passes on unchanged
_PASSED = ("window", "strategy", "scaling", "cell", "hidden_size", "num_layers", "dropout",
           "batch_size", "max_epochs", "learning_rate", "optimizer", "weight_decay",
           "clip_norm", "loss", "early_stopping", "validation_fraction", "n_iter_no_change",
           "tol", "callbacks", "random_state", "n_jobs", "verbose", "dtype")


class SktimeLSTMForecaster(BaseForecaster):
    """An sktime forecaster: a fastlstm recurrent network over sliding windows.

    Each training window of ``window`` steps (scaled by its last value or
    mean, ``scaling``) is mapped to the next steps of the series: all of the
    horizon at once (``strategy="direct"``, the horizon being the largest
    step of ``fh`` given to ``fit``) or one step fed back
    (``strategy="recursive"``, which forecasts any horizon and does not need
    ``fh`` in ``fit``).  Works with every sktime tool that takes a
    forecaster: ``evaluate`` with temporal cross-validation,
    ``ForecastingGridSearchCV``, pipelines, and panels or hierarchies
    through sktime's vectorization (one model per series).

    Parameters
    ----------
    window : int, default=24
        Steps of history each forecast reads.
    strategy : {"direct", "recursive"}, default="direct"
        Multi-output forecasts of the whole horizon, or one step fed back.
    scaling : {"last", "mean", "none"}, default="last"
        Per-window scaling: each window (and its targets) divided by its
        last value or mean (``"none"``: as they are); undone on the output.
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        The recurrent cell.
    hidden_size : int, default=32
        Units of each recurrent layer.
    num_layers : int, default=1
        Stacked recurrent layers.
    dropout : float, default=0.0
        Dropout between stacked layers while training.
    batch_size : int, default=32
        Windows per mini-batch.
    max_epochs : int, default=100
        Passes over the windows.
    learning_rate : float, default=5e-3
        The optimizer's step size.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        The optimizer.
    weight_decay : float, default=0.0
        L2 penalty.
    clip_norm : float or None, default=5.0
        Clip the gradient's global norm to this value.
    loss : str, default="squared_error"
        The training loss, as for :class:`~fastlstm.LSTMForecaster`.
    early_stopping : bool, default=False
        Stop when the loss on the last ``validation_fraction`` of the series
        stops improving.
    validation_fraction : float, default=0.1
        The held-out last part of the series with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without an improvement of at least ``tol`` before stopping.
    tol : float, default=1e-4
        The improvement that counts.
    callbacks : list of fastlstm.callbacks.Callback or None, default=None
        Training callbacks.
    random_state : int, RandomState instance or None, default=None
        The same seed, data and ``n_jobs`` give bit-identical forecasts.
    n_jobs : int or None, default=None
        Threads of each fit, as for the fastlstm estimators.
    verbose : int, default=0
        Print one line per epoch when positive.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the network.

    Attributes
    ----------
    forecaster_ : LSTMForecaster
        The fitted fastlstm forecaster (it can be saved with
        :func:`fastlstm.save`).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from fastlstm.ecosystem.sktime import SktimeLSTMForecaster
    >>> index = pd.period_range("1990-01", periods=96, freq="M")
    >>> y = pd.Series(10 + np.sin(np.arange(96) * np.pi / 6) + np.arange(96) / 20,
    ...               index=index, name="level")
    >>> f = SktimeLSTMForecaster(window=12, hidden_size=8, max_epochs=20, random_state=0)
    >>> y_pred = f.fit(y, fh=[1, 2, 3]).predict()
    >>> y_pred.index
    PeriodIndex(['1998-01', '1998-02', '1998-03'], dtype='period[M]')
    >>> y_pred.name
    'level'
    """

    _tags = {
        "authors": ["fastlstm developers"],
        "maintainers": ["fastlstm developers"],
        "y_inner_mtype": ["pd.Series", "pd.DataFrame"],
        "X_inner_mtype": "pd.DataFrame",
        "capability:multivariate": True,
        "capability:exogenous": True,
        "capability:insample": False,
        "capability:pred_int": False,
        "capability:pred_int:insample": False,
        "capability:missing_values": False,
        "capability:non_contiguous_X": False,
        "capability:categorical_in_X": False,
        "capability:update": True,
        "requires-fh-in-fit": True,
        "X-y-must-have-same-index": True,
        "fit_is_empty": False,
        "capability:random_state": True,
        "property:randomness": "derandomized",
    }

    def __init__(self, window: int = 24, strategy: str = "direct", scaling: str = "last",
                 cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 dropout: float = 0.0, batch_size: int = 32, max_epochs: int = 100,
                 learning_rate: float = 5e-3, optimizer: str = "adam",
                 weight_decay: float = 0.0, clip_norm: float | None = 5.0,
                 loss: str = "squared_error", early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10,
                 tol: float = 1e-4, callbacks: list | None = None, random_state: Any = None,
                 n_jobs: int | None = None, verbose: int = 0, dtype: str = "float32") -> None:
        for name, value in locals().items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)
        super().__init__()
        if strategy == "recursive":  # forecasts any horizon: fh can wait for predict
            self.set_tags(**{"requires-fh-in-fit": False})

    # ------------------------------------------------------------ fit
    def _fit(self, y: pd.Series | pd.DataFrame, X: pd.DataFrame | None = None,
             fh: ForecastingHorizon | None = None) -> SktimeLSTMForecaster:
        horizon = 1
        if self.strategy != "recursive":
            horizon = int(np.max(fh.to_relative(self.cutoff).to_numpy()))
        self._cur_y, self._cur_X = y, X
        self._fit_forecaster(horizon)
        return self

    def _fit_forecaster(self, horizon: int) -> None:
        forecaster = LSTMForecaster(horizon=horizon, **{n: getattr(self, n) for n in _PASSED})
        y, X = self._cur_y, self._cur_X
        if X is None:
            forecaster.fit(_values(y, "y"))
        else:
            forecaster.fit(_values(y, "y"), _values(X, "X"),
                           future_covariates=list(range(X.shape[1])))
        self.forecaster_ = forecaster

    # ------------------------------------------------------------ update
    def _update(self, y: pd.Series | pd.DataFrame, X: pd.DataFrame | None = None,
                update_params: bool = True) -> SktimeLSTMForecaster:
        """Append the new data to the context; with ``update_params``, refit on all of it."""
        if self._cur_X is not None:
            if X is None or not y.index.isin(X.index).all():
                raise ValueError("this forecaster was fitted with exogenous X: update needs "
                                 "X for every new time point of y")
            self._cur_X = _appended(self._cur_X, X)
        self._cur_y = _appended(self._cur_y, y)
        if update_params:
            self._fit_forecaster(self.forecaster_.horizon)
        return self

    # ------------------------------------------------------------ predict
    def _predict(self, fh: ForecastingHorizon,
                 X: pd.DataFrame | None = None) -> pd.Series | pd.DataFrame:
        forecaster = self.forecaster_
        steps = fh.to_relative(self.cutoff).to_numpy().astype(np.int64)
        h = int(steps.max())
        window = forecaster.window
        y = self._cur_y
        if len(y) < window:
            raise ValueError(f"the forecast reads the last window={window} observations, "
                             f"but only {len(y)} are known")
        context = _values(y.iloc[len(y) - window:], "y")
        if self._cur_X is None:
            if X is not None and X.shape[1]:
                raise ValueError("X was given to predict, but the forecaster was fitted "
                                 "without exogenous data: pass X to fit as well")
            out = forecaster.predict(h, y=context)
        else:
            n_future = h if forecaster.strategy == "recursive" else forecaster.horizon
            future = self._future_X(X, n_future, fh)
            tail = y.index[len(y) - window:]
            if not tail.isin(self._cur_X.index).all():
                raise ValueError("X does not cover the last window of y")
            past = _values(self._cur_X.loc[tail], "X")
            out = forecaster.predict(h, y=context, X=np.concatenate([past, future]))
        out = np.asarray(out)[steps - 1]
        index = fh.to_absolute_index(self.cutoff)
        if isinstance(y, pd.DataFrame):
            return pd.DataFrame(out.reshape(len(steps), -1), index=index, columns=y.columns)
        return pd.Series(out.reshape(len(steps)), index=index, name=y.name)

    def _future_X(self, X: pd.DataFrame | None, n_future: int,
                  fh: ForecastingHorizon) -> np.ndarray:
        """The rows of ``X`` for the ``n_future`` steps after the cutoff."""
        if X is None:
            raise ValueError(f"this forecaster was fitted with exogenous X: predict needs X "
                             f"for the {n_future} time points after the cutoff")
        wanted = ForecastingHorizon(np.arange(1, n_future + 1), is_relative=True,
                                    freq=fh.freq).to_absolute_index(self.cutoff)
        missing = wanted.difference(X.index)
        if len(missing):
            raise ValueError(
                f"X must hold the {n_future} time points after the cutoff (every step up to "
                f"the fitted horizon: the network reads them all); missing {list(missing)}")
        return _values(X.loc[wanted, self._cur_X.columns], "X")

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict]:
        """Small, quick models for sktime's estimator checks.

        Parameters
        ----------
        parameter_set : str, default="default"
            Only ``"default"``.

        Returns
        -------
        params : list of dict
        """
        return [{"window": 3, "hidden_size": 4, "max_epochs": 2, "batch_size": 8,
                 "random_state": 0, "n_jobs": 1},
                {"window": 4, "strategy": "recursive", "scaling": "mean", "cell": "gru",
                 "hidden_size": 3, "max_epochs": 2, "random_state": 1, "n_jobs": 1}]


def _values(frame: pd.Series | pd.DataFrame, what: str) -> np.ndarray:
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must hold numbers: {exc}") from exc


def _appended(old: pd.Series | pd.DataFrame,
              new: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """``old`` then ``new``; rows of ``new`` replace those of ``old`` at the same time."""
    both = pd.concat([old[~old.index.isin(new.index)], new])
    return both.sort_index()
