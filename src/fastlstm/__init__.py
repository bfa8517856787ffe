"""fastlstm: fast LSTM training and inference on ordinary CPUs."""

from fastlstm._estimators import LSTMClassifier, LSTMRegressor
from fastlstm._io import load, save
from fastlstm._lstm import LSTM
from fastlstm._rnn import RNN
from fastlstm._scaler import SequenceScaler

__all__ = ["LSTM", "LSTMClassifier", "LSTMRegressor", "RNN", "SequenceScaler", "load", "save"]
__version__ = "0.1.0"
