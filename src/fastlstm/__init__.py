"""fastlstm: fast LSTM training and inference on ordinary CPUs.

The public API is what this module exports, and :mod:`fastlstm.callbacks`.
Inside, the package is laid out by layer, each importing only those below
it: ``_kernels`` (compiled) < ``runtime`` < ``nn`` < ``train`` <
``estimators`` < ``io`` < ``export`` < the command line and ``_bench``.
"""

from fastlstm import _compat
from fastlstm import export as _export  # noqa: F401 - provides to_onnx, to_torch, predict_step
from fastlstm._version import __version__ as __version__
from fastlstm.estimators.classifier import LSTMClassifier
from fastlstm.estimators.forecaster import LSTMForecaster
from fastlstm.estimators.regressor import LSTMRegressor
from fastlstm.estimators.scaler import SequenceScaler
from fastlstm.export.onnx_pipeline import to_onnx
from fastlstm.io.saving import load, save
from fastlstm.nn.cells.gru import GRU
from fastlstm.nn.cells.lstm import LSTM
from fastlstm.nn.cells.rnn import RNN
from fastlstm.runtime.config import config_context, get_config, set_config

_compat.install()

__all__ = [
    "GRU",
    "LSTM",
    "LSTMClassifier",
    "LSTMForecaster",
    "LSTMRegressor",
    "RNN",
    "SequenceScaler",
    "config_context",
    "get_config",
    "load",
    "save",
    "set_config",
    "to_onnx",
]
