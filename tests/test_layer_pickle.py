"""Layers survive pickling: configuration, parameters and random state travel, caches do not."""

import pickle
from pathlib import Path

import numpy as np
import pytest

import fastlstm


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN])
def test_layers_pickle_round_trip(cls):
    rng = np.random.default_rng(7)
    layer = cls(3, 4, num_layers=2, dropout=0.3, random_state=0)
    x = rng.standard_normal((2, 5, 3))
    layer.forward(x, training=True)  # a cache that must not travel
    if cls is fastlstm.LSTM:
        layer.step(x[:, 0])  # a stepper holding raw pointers
    clone = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(clone.forward(x)[0], layer.forward(x)[0])
    # the random state travels too: the same dropout masks follow
    np.testing.assert_array_equal(clone.forward(x, training=True)[0],
                                  layer.forward(x, training=True)[0])
    if cls is fastlstm.LSTM:
        np.testing.assert_array_equal(clone.step(x[:, 0])[0], layer.step(x[:, 0])[0])


@pytest.mark.parametrize("name", ["lstm", "rnn", "classifier", "regressor", "scaler"])
def test_pickles_of_the_flat_layout_still_load(name):
    """Objects pickled by fastlstm 0.1.0 (modules side by side) load and compute as they did."""
    data_dir = Path(__file__).parent / "data"
    with open(data_dir / f"{name}-0.1.0.pkl", "rb") as f:
        obj = pickle.load(f)
    expected = np.load(data_dir / "pickles-0.1.0-expected.npz")
    x = expected["X"]
    if name in ("lstm", "rnn"):
        got = obj.forward(x)[0]
    elif name == "scaler":
        got = obj.transform(x)
    else:
        got = obj.predict(x)
    # The expected figures were computed on one CPU; float32 kernels of another
    # instruction set round differently (< 1e-6 relative), while a weight, a
    # scaling constant or a setting lost on the way would be off by far more.
    np.testing.assert_allclose(got, expected[name], rtol=2e-6, atol=1e-6)
    # and it pickles again under today's module names
    assert "fastlstm._" not in type(pickle.loads(pickle.dumps(obj))).__module__


def test_loading_an_old_pickle_leaves_the_current_modules_as_they_are():
    import fastlstm.estimators as estimators

    with open(Path(__file__).parent / "data" / "regressor-0.1.0.pkl", "rb") as f:
        pickle.load(f)
    assert estimators.__spec__.name == "fastlstm.estimators"
    assert fastlstm.LSTMRegressor.__module__ == "fastlstm.estimators.regressor"
