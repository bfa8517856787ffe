"""fastlstm: fast LSTM training and inference on ordinary CPUs."""

from fastlstm._config import config_context, get_config, set_config
from fastlstm._estimators import LSTMClassifier, LSTMRegressor
from fastlstm._io import load, save
from fastlstm._lstm import LSTM
from fastlstm._rnn import RNN
from fastlstm._scaler import SequenceScaler

__all__ = [
    "LSTM",
    "LSTMClassifier",
    "LSTMRegressor",
    "RNN",
    "SequenceScaler",
    "config_context",
    "get_config",
    "load",
    "save",
    "set_config",
]
__version__ = "0.1.0"
