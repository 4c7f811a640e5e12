"""alignDRAW's language side (Mansimov et al. 2016, "Generating Images from Captions with
Attention", section 3.1): a bidirectional LSTM over the caption's word embeddings, and the alignment
attention that turns the generator's previous state into a weighted sum of the word states.

    h_lang = [h_forward, h_backward]                        (B, L, 2 * hidden)
    e_k = v^T tanh(U h_lang_k + W h_gen + b),   alpha = softmax_k(e) over real words only
    s = sum_k alpha_k h_lang_k                              (B, 2 * hidden)

Token 0 is padding; captions are packed so the backward direction starts at the last real word.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class CaptionEncoder(nn.Module):
    """Word ids (B, L), 0 = padding -> word states (B, L, 2 * hidden) and a mask (B, L) bool."""

    def __init__(self, vocabulary_size: int, embedding: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary_size + 1, embedding, padding_idx=0)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True, bidirectional=True)
        self.out_features = 2 * hidden

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        mask = tokens != 0  # (B, L)
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.lstm(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        return states, mask  # (B, L, 2h), (B, L)


class AlignmentAttention(nn.Module):
    """``forward(words, mask, h_gen)`` -> (context (B, D), alpha (B, L)).

    ``project(words)`` computes U h_lang once per caption; pass its result as ``keys``.
    """

    def __init__(self, word_features: int, state_features: int, hidden: int) -> None:
        super().__init__()
        self.u = nn.Linear(word_features, hidden, bias=False)
        self.w = nn.Linear(state_features, hidden)  # its bias is the b of the equation
        self.v = nn.Linear(hidden, 1, bias=False)

    def project(self, words: Tensor) -> Tensor:
        return self.u(words)  # (B, L, hidden)

    def forward(self, words: Tensor, keys: Tensor, mask: Tensor, h_gen: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.v(torch.tanh(keys + self.w(h_gen)[:, None])).squeeze(-1)  # (B, L)
        alpha = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, L)
        return (alpha[:, :, None] * words).sum(1), alpha
