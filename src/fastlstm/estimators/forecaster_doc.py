"""The docstring of :class:`LSTMForecaster` (long; kept apart from the code)."""

FORECASTER_DOC = """Forecaster: an LSTM over sliding windows of one or many series.

    Each training window of ``window`` steps is scaled relative to itself
    (``scaling``) and an inner :class:`LSTMRegressor` learns the next
    ``horizon`` values at once (``strategy="direct"``) or the next one, fed
    back as input for longer forecasts (``strategy="recursive"``).  The
    per-window scaling is what lets a tanh network follow a trend: with
    ``scaling="last"`` the network sees and predicts values relative to the
    last observed one.  Everything the regressor does (early stopping,
    callbacks, fits that leave the old model on failure, memory checks,
    progress, ``warm_start``, ``history_``) applies.

    Parameters
    ----------
    window : int, default=24
        Steps of history the network reads.
    horizon : int, default=1
        Steps forecast by :meth:`predict` by default; for the direct
        strategy, the most it can forecast.
    strategy : {"direct", "recursive"}, default="direct"
        ``"direct"``: one output per forecast step (and target), trained
        jointly.  ``"recursive"``: one-step-ahead model, its forecasts fed
        back; needs every covariate to be known in the future.
    scaling : {"last", "mean", "none"}, default="last"
        The reference subtracted from each window's targets (and added back
        to its forecast): the window's last value, its mean, or nothing
        (the series' mean).  The difference is then divided by one spread
        fitted on the training windows.  Covariates are standardized.
    cell : {"lstm", "gru", "rnn"}, default="lstm"
    hidden_size : int, default=32
    num_layers : int, default=1
    dropout : float, default=0.0
    batch_size : int, default=32
    max_epochs : int, default=100
    learning_rate : float, default=5e-3
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    weight_decay : float, default=0.0
    clip_norm : float or None, default=5.0
    loss : {"squared_error", "absolute_error", "huber"}, default="squared_error"
        As for :class:`LSTMRegressor`.
    early_stopping : bool, default=False
        Hold out the last ``validation_fraction`` of the windows of *each*
        series (and drop the ``horizon - 1`` before them, whose targets
        overlap) and stop when their score stops improving, restoring the
        best weights.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    callbacks : list of Callback or None, default=None
        Passed to the inner regressor (not with ``per_series=True``).
    warm_start : bool, default=False
        Continue training the fitted model (same window, horizon,
        strategy, scaling and network; the fitted scaling is kept).
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
    n_jobs : int or None, default=None
        Threads of the network, or with ``per_series=True`` models fitted
        at once (each with one thread).
    verbose : int, default=0
        Progress of the training (of the whole fleet with
        ``per_series=True``).
    dtype : {"float32", "float64"}, default="float32"
    per_series : bool, default=False
        Fit one independent model per series of a list or panel (a fleet)
        instead of one global model; each member equals an
        ``LSTMForecaster`` fitted on its series alone with the seed of
        :func:`fastlstm.estimators.fleet.derive_seeds`.
    backend : {None, "threads", "processes", "dask"}, default=None
        Where a fleet trains: threads of this process (None, "threads"),
        ``n_jobs`` worker processes (joblib's loky; "processes"), or the
        workers of the current ``dask.distributed`` client ("dask"), with
        identical results.

    Attributes
    ----------
    regressor_ : LSTMRegressor
        The inner model (not for ``per_series=True``).
    scaling_ : fastlstm.train.windows.WindowScaling
        The fitted scaling constants (not for ``per_series=True``).
    models_, scalings_ : list
        With ``per_series=True``, each series' regressor and scaling.
    spec_ : WindowSpec
        Window, steps per output, targets, covariates, future covariates.
    tails_ : ndarray of shape (n_series, window, n_targets + n_covariates)
        The end of each training series, which :meth:`predict` continues.
    n_series_ : int
    loss_curve_, best_loss_, n_iter_, history_ : as for LSTMRegressor
        (not for ``per_series=True``).

    See Also
    --------
    LSTMRegressor : The inner model, on windows made by hand.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import LSTMForecaster
    >>> t = np.arange(300)
    >>> y = 0.05 * t + np.sin(2 * np.pi * t / 12)
    >>> f = LSTMForecaster(window=24, horizon=6, hidden_size=16, max_epochs=60,
    ...                    random_state=0).fit(y[:-6])
    >>> forecast = f.predict()
    >>> bool(np.abs(forecast - y[-6:]).mean() < np.abs(y[-7] - y[-6:]).mean())
    True

    A fleet: one small model per series, fitted concurrently, each one what a
    forecaster fitted on its series alone would be:

    >>> series = [y[:200], 2 * y[50:250] + 1, y[::-1][:180]]
    >>> fleet = LSTMForecaster(window=24, horizon=6, hidden_size=8, max_epochs=5,
    ...                        per_series=True, random_state=0).fit(series)
    >>> [f.shape for f in fleet.predict()]
    [(6,), (6,), (6,)]
    """
