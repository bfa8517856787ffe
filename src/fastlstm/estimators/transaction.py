"""Transactional fits: a fit that raises leaves the estimator as it was.

:class:`FitSnapshot` records an estimator's fitted state before a ``fit`` or
``partial_fit`` and puts it back if the call fails.  A fit from scratch
builds new objects (network, optimizer, curves) and only rebinds attributes,
so a shallow copy of the attribute dict undoes it; a fit that continues
(``warm_start``, ``partial_fit``) trains the existing network in place, so
its weights, optimizer state, curves and random generators are copied too.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["FitSnapshot"]


class FitSnapshot:
    """The fitted state of an estimator at one moment, to restore after a failed fit.

    Parameters
    ----------
    estimator : LSTMClassifier or LSTMRegressor
        The estimator about to be fitted.
    continuing : bool
        Whether the fit may train the existing network in place (warm start,
        partial fit); only then are weights and optimizer state copied.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import LSTMRegressor
    >>> from fastlstm.estimators.transaction import FitSnapshot
    >>> X = np.random.default_rng(0).uniform(size=(16, 3, 1))
    >>> reg = LSTMRegressor(hidden_size=4, max_epochs=1, random_state=0).fit(X, X[:, -1, 0])
    >>> before = reg.predict(X)
    >>> snapshot = FitSnapshot(reg, continuing=True)
    >>> reg = reg.partial_fit(X, X[:, 0, 0])
    >>> snapshot.restore(reg)
    >>> bool((reg.predict(X) == before).all())
    True
    """

    def __init__(self, estimator: Any, continuing: bool) -> None:
        self._attributes = dict(estimator.__dict__)
        self._net = None
        net = self._attributes.get("network_")
        if net is not None:
            self._net = net
            self._config = dict(net.config)
            self._dropout = net.layer.dropout
            self._n_jobs = net.layer.n_jobs
        self._weights = None
        if continuing and net is not None:
            self._weights = net.get_weights()
            self._layer_rng = copy.deepcopy(net.layer._rng.bit_generator.state)
            optimizer = self._attributes.get("_optimizer")
            self._optimizer = None
            if optimizer is not None:
                self._optimizer = (optimizer, optimizer.get_state(), dict(vars(optimizer)))
            self._train_state = copy.deepcopy(self._attributes.get("_state"))
            rng = self._attributes.get("_rng")
            self._rng_state = None if rng is None else rng.get_state()

    def restore(self, estimator: Any) -> None:
        """Put the recorded state back into ``estimator`` (which must be the same object)."""
        estimator.__dict__.clear()
        estimator.__dict__.update(self._attributes)
        net = self._net
        if net is None:
            return
        net.config.clear()
        net.config.update(self._config)
        net.layer.dropout = self._dropout
        net.layer.n_jobs = self._n_jobs
        if self._weights is None:
            return
        net.set_weights(self._weights)
        net.layer._rng.bit_generator.state = self._layer_rng
        if self._optimizer is not None:
            optimizer, state, attributes = self._optimizer
            optimizer.set_state(state)
            for name in ("learning_rate", "weight_decay", "momentum"):
                if name in attributes:
                    setattr(optimizer, name, attributes[name])
        if self._train_state is not None:
            estimator._state = self._train_state
        if self._rng_state is not None:
            estimator._rng.set_state(self._rng_state)
