"""Memory does not grow over many fit/predict cycles (part of the fault suite).

Marked ``slow`` (a few seconds); it runs in the default ``pytest`` run, and
``pytest -m "not slow"`` leaves it out.
"""

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastlstm import LSTM, LSTMClassifier, LSTMRegressor
from fastlstm.train.optim import Adam

STATM = Path("/proc/self/statm")


def _rss() -> int:
    """Resident memory of this process in bytes (Linux)."""
    import os

    return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cycle(i, X, y, labels):
    """One round of everything that allocates: fits, failures, interrupts, pickles."""
    reg = LSTMRegressor(hidden_size=6, max_epochs=1, batch_size=8, random_state=i,
                        n_jobs=1 + i % 2)
    reg.fit(X, y)
    reg.predict(list(X[:5]))
    clf = LSTMClassifier(hidden_size=6, max_epochs=1, batch_size=8, random_state=i)
    clf.fit(X, labels)
    clf = pickle.loads(pickle.dumps(clf))
    clf.predict_proba(X)
    with pytest.raises(ValueError):  # a failed refit, rolled back
        reg.set_params(early_stopping=True).fit(X[:3], y[:3])
    real_step = Adam.step
    try:  # an interrupted partial fit
        Adam.step = lambda self, p, g: (_ for _ in ()).throw(KeyboardInterrupt)
        with pytest.raises(KeyboardInterrupt):
            reg.set_params(early_stopping=False).partial_fit(X, y)
    finally:
        Adam.step = real_step
    layer = LSTM(2, 8, num_layers=2, random_state=i)
    out, _ = layer.forward(X, training=True)
    layer.backward(np.ones_like(out))
    h, state = layer.step(X[:, 0])


@pytest.mark.slow
@pytest.mark.skipif(not STATM.exists(), reason="reads /proc/self/statm (Linux)")
def test_rss_is_flat_over_300_cycles():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(16, 5, 2)).astype(np.float32)
    y = X[:, :, 0].sum(axis=1)
    labels = np.where(y > 0, "up", "down")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(50):  # warm-up: pools, caches, lazily built objects
            _cycle(i, X, y, labels)
        start = _rss()
        for i in range(50, 300):
            _cycle(i, X, y, labels)
        grown = _rss() - start
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 250 cycles"
