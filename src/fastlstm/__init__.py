"""fastlstm: fast LSTM training and inference on ordinary CPUs."""

from fastlstm._layer import LSTM

__all__ = ["LSTM"]
__version__ = "0.1.0"
