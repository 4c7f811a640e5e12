"""Recurrent building blocks: plain ``torch.nn.Module`` s, no training code."""

from rnnimg.nn.conv_scan import ConvScanCell
from rnnimg.nn.convgru import ConvGRUCell
from rnnimg.nn.convlstm import ConvLSTMCell
from rnnimg.nn.diagonal_bilstm import DiagonalBiLSTM, DiagonalLSTM, skew, unskew
from rnnimg.nn.masked import MaskedConv2d, colour_groups
from rnnimg.nn.patching import FRAME_OUTPUTS, depth_to_space, patched_size, space_to_depth, to_frame_range
from rnnimg.nn.rnn import RECURRENT_KINDS, RNN, RNNCell, make_recurrent
from rnnimg.nn.row_lstm import RowLSTM
from rnnimg.nn.scan2d import Scan2D, Scan2DBlock
from rnnimg.nn.st_lstm import SpatioTemporalLSTMCell

__all__ = ["FRAME_OUTPUTS", "RECURRENT_KINDS", "RNN", "ConvGRUCell", "ConvLSTMCell", "ConvScanCell",
           "DiagonalBiLSTM", "DiagonalLSTM", "MaskedConv2d", "RNNCell", "RowLSTM", "Scan2D", "Scan2DBlock",
           "SpatioTemporalLSTMCell", "colour_groups", "depth_to_space", "make_recurrent", "patched_size",
           "skew", "space_to_depth", "to_frame_range", "unskew"]
