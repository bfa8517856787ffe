"""Recurrent layers: parameters, plans, the BLAS / packed / ragged engines, the cells.

The cells fastlstm ships are registered here, one line each.
"""

from fastlstm.nn import registry
from fastlstm.nn.cells.gru import GRU
from fastlstm.nn.cells.lstm import LSTM
from fastlstm.nn.cells.rnn import RNN

registry.register(LSTM)
registry.register(RNN)
registry.register(GRU)
