"""Recurrent building blocks: plain ``torch.nn.Module`` s, no training code."""

from rnnimg.nn.diagonal_bilstm import DiagonalBiLSTM, DiagonalLSTM, skew, unskew
from rnnimg.nn.masked import MaskedConv2d, colour_groups
from rnnimg.nn.rnn import RECURRENT_KINDS, RNN, RNNCell, make_recurrent
from rnnimg.nn.row_lstm import RowLSTM

__all__ = ["RECURRENT_KINDS", "RNN", "DiagonalBiLSTM", "DiagonalLSTM", "MaskedConv2d", "RNNCell",
           "RowLSTM", "colour_groups", "make_recurrent", "skew", "unskew"]
