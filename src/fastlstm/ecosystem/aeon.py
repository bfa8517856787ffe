"""aeon adapters: :class:`AeonLSTMClassifier` and :class:`AeonLSTMRegressor`.

They are aeon ``BaseClassifier`` / ``BaseRegressor`` estimators that train
a fastlstm :class:`~fastlstm.LSTMClassifier` / :class:`~fastlstm.LSTMRegressor`
on aeon's collections: equal-length ``numpy3D`` arrays ``(n_cases,
n_channels, n_timepoints)`` and unequal-length ``np-list`` lists of
``(n_channels, n_timepoints_i)`` arrays, which the fastlstm estimators read
as they are with ``channels_first=True`` (no copy into another layout, no
padding).  Each channel is standardized first by a
:class:`~fastlstm.SequenceScaler` (``standardize=True``); the fitted
fastlstm model, a ``Pipeline`` of the two, is ``model_``, which
:func:`fastlstm.save` and :func:`fastlstm.to_onnx` take.

Needs the optional ``aeon`` package: ``pip install 'fastlstm[aeon]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from aeon.classification.base import BaseClassifier
    from aeon.regression.base import BaseRegressor
    from aeon.utils.validation import check_n_jobs
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "fastlstm.ecosystem.aeon needs the optional 'aeon' package: "
        "pip install 'fastlstm[aeon]'") from exc

from sklearn.pipeline import Pipeline

from fastlstm.estimators import LSTMClassifier, LSTMRegressor
from fastlstm.estimators.scaler import SequenceScaler

__all__ = ["AeonLSTMClassifier", "AeonLSTMRegressor"]

# the fastlstm estimator parameters the adapters pass on unchanged
_PASSED = ("cell", "hidden_size", "num_layers", "bidirectional", "dropout", "batch_size",
           "max_epochs", "learning_rate", "optimizer", "weight_decay", "clip_norm",
           "early_stopping", "validation_fraction", "n_iter_no_change", "tol", "callbacks",
           "random_state", "verbose", "dtype")

_TAGS = {
    "X_inner_type": ["numpy3D", "np-list"],
    "capability:univariate": True,
    "capability:multivariate": True,
    "capability:unequal_length": True,
    "capability:multithreading": True,
    "algorithm_type": "deeplearning",
}

_PARAMETERS_DOC = """
    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        The recurrent cell.
    hidden_size : int, default=64
        Units per layer and direction.
    num_layers : int, default=1
        Stacked recurrent layers.
    bidirectional : bool, default=False
        Read each series in both directions.
    dropout : float, default=0.0
        Dropout between stacked layers while training.
    batch_size : int, default=32
        Series per mini-batch.
    max_epochs : int, default=100
        Passes over the training series.
    learning_rate : float, default=1e-3
        The optimizer's step size.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        The optimizer.
    weight_decay : float, default=0.0
        L2 penalty (decoupled for ``"adamw"``).
    clip_norm : float or None, default=5.0
        Clip the gradient's global norm to this value.
    early_stopping : bool, default=False
        Stop when the score on a held-out ``validation_fraction`` of the
        series stops improving for ``n_iter_no_change`` epochs.
    validation_fraction : float, default=0.1
        The held-out part with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without an improvement of at least ``tol`` before stopping.
    tol : float, default=1e-4
        The improvement that counts.
    standardize : bool, default=True
        Standardize each channel over all time points of the training series
        (a :class:`~fastlstm.SequenceScaler` before the network).
    callbacks : list of fastlstm.callbacks.Callback or None, default=None
        Training callbacks, as for the fastlstm estimators.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights and the mini-batch order: the same seed, data and
        ``n_jobs`` give bit-identical models.
    n_jobs : int, default=1
        Threads the recurrences run on (``-1``: all cores), as aeon counts
        them.
    verbose : int, default=0
        Print one line per epoch when positive.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the weights and the computation.
"""


class _FastlstmAdapter:
    """Parameters and the fitted fastlstm model the two adapters share."""

    _fastlstm_class: type = LSTMClassifier

    def _init_params(self, params: dict[str, Any]) -> None:
        for name, value in params.items():
            setattr(self, name, value)

    def _fit_model(self, X: Any, y: np.ndarray) -> Pipeline:
        self._n_jobs = check_n_jobs(self.n_jobs)
        est = self._fastlstm_class(channels_first=True, n_jobs=self._n_jobs,
                                   **{name: getattr(self, name) for name in _PASSED})
        steps = [("scaler", SequenceScaler(channels_first=True))] if self.standardize else []
        model = Pipeline([*steps, ("model", est)])
        self.model_ = model.fit(X, y)
        return model

    @classmethod
    def _get_test_params(cls, parameter_set: str = "default") -> dict | list[dict]:
        """Small, quick models for aeon's estimator checks.

        Parameters
        ----------
        parameter_set : str, default="default"
            Only ``"default"``.

        Returns
        -------
        params : list of dict
        """
        return [{"hidden_size": 4, "max_epochs": 2, "batch_size": 8, "random_state": 0},
                {"hidden_size": 3, "cell": "gru", "bidirectional": True, "max_epochs": 1,
                 "standardize": False, "random_state": 1}]


class AeonLSTMClassifier(_FastlstmAdapter, BaseClassifier):
    __doc__ = """An aeon classifier: a fastlstm recurrent network on aeon's collections.

    Takes what every aeon classifier takes: ``(n_cases, n_channels,
    n_timepoints)`` arrays, ``(n_cases, n_timepoints)`` univariate tables
    and lists of ``(n_channels, n_timepoints_i)`` arrays of different
    lengths, which the network reads without padding.  The class
    probabilities are the softmax of the readout of the last hidden state.
    """ + _PARAMETERS_DOC + """
    Attributes
    ----------
    model_ : sklearn.pipeline.Pipeline
        The fitted fastlstm model: ``SequenceScaler`` (with ``standardize``)
        and :class:`~fastlstm.LSTMClassifier`, reading channels first; it
        can be saved with :func:`fastlstm.save` and exported with
        :func:`fastlstm.to_onnx`.
    classes_ : ndarray
        The class labels, as aeon sets them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.ecosystem.aeon import AeonLSTMClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2, 12))                  # (n_cases, n_channels, n_timepoints)
    >>> y = np.where(X[:, 0, -3:].sum(axis=1) > 0, "up", "down")
    >>> clf = AeonLSTMClassifier(hidden_size=8, max_epochs=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (40, 2)
    >>> ragged = [X[i, :, : 6 + i % 6] for i in range(40)]   # unequal lengths
    >>> clf.fit(ragged, y).predict(ragged[:3]).shape
    (3,)
    """

    _tags = dict(_TAGS)
    _fastlstm_class = LSTMClassifier

    def __init__(self, cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, batch_size: int = 32,
                 max_epochs: int = 100, learning_rate: float = 1e-3, optimizer: str = "adam",
                 weight_decay: float = 0.0, clip_norm: float | None = 5.0,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, standardize: bool = True,
                 callbacks: list | None = None, random_state: Any = None, n_jobs: int = 1,
                 verbose: int = 0, dtype: str = "float32") -> None:
        self._init_params({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        super().__init__()

    def _fit(self, X: Any, y: np.ndarray) -> AeonLSTMClassifier:
        self._fit_model(X, y)
        return self

    def _predict_proba(self, X: Any) -> np.ndarray:
        proba = self.model_.predict_proba(X)
        # columns in the order of aeon's classes_ (both sort the labels; made sure)
        inner = list(self.model_[-1].classes_)
        order = [inner.index(c) for c in self.classes_]
        return np.ascontiguousarray(proba[:, order])

    def _predict(self, X: Any) -> np.ndarray:
        proba = self._predict_proba(X)
        return np.asarray(self.classes_)[np.argmax(proba, axis=1)]


class AeonLSTMRegressor(_FastlstmAdapter, BaseRegressor):
    __doc__ = """An aeon regressor: a fastlstm recurrent network on aeon's collections.

    Takes what every aeon regressor takes (equal-length 3D arrays, 2D
    univariate tables, lists of series of different lengths) and predicts
    one value per series from the readout of the last hidden state; the
    targets are standardized while training and the predictions are in
    their units.
    """ + _PARAMETERS_DOC + """
    Attributes
    ----------
    model_ : sklearn.pipeline.Pipeline
        The fitted fastlstm model: ``SequenceScaler`` (with ``standardize``)
        and :class:`~fastlstm.LSTMRegressor`, reading channels first.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.ecosystem.aeon import AeonLSTMRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3, 10))
    >>> reg = AeonLSTMRegressor(hidden_size=8, max_epochs=5, random_state=0)
    >>> reg.fit(X, X[:, 0, -1] + 2 * X[:, 1, 0]).predict(X).shape
    (40,)
    """

    _tags = dict(_TAGS)
    _fastlstm_class = LSTMRegressor

    def __init__(self, cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, batch_size: int = 32,
                 max_epochs: int = 100, learning_rate: float = 1e-3, optimizer: str = "adam",
                 weight_decay: float = 0.0, clip_norm: float | None = 5.0,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, standardize: bool = True,
                 callbacks: list | None = None, random_state: Any = None, n_jobs: int = 1,
                 verbose: int = 0, dtype: str = "float32") -> None:
        self._init_params({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        super().__init__()

    def _fit(self, X: Any, y: np.ndarray) -> AeonLSTMRegressor:
        self._fit_model(X, np.asarray(y, dtype=np.float64))
        return self

    def _predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict(X), dtype=np.float64)
