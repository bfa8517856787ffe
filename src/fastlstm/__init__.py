"""fastlstm: fast LSTM training and inference on ordinary CPUs."""

from fastlstm._config import config_context, get_config, set_config
from fastlstm._estimators import LSTMClassifier, LSTMRegressor
from fastlstm._lstm import LSTM
from fastlstm._rnn import RNN

__all__ = [
    "LSTM",
    "LSTMClassifier",
    "LSTMRegressor",
    "RNN",
    "config_context",
    "get_config",
    "set_config",
]
__version__ = "0.1.0"
