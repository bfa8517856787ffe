"""Layers survive pickling: configuration, parameters and random state travel, caches do not."""

import pickle

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
