"""Recurrent building blocks: plain ``torch.nn.Module`` s, no training code."""

from rnnimg.nn.rnn import RECURRENT_KINDS, RNN, RNNCell, make_recurrent

__all__ = ["RECURRENT_KINDS", "RNN", "RNNCell", "make_recurrent"]
