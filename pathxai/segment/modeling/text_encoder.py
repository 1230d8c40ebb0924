"""Text encoder: learned word embeddings + a small transformer over prompt tokens."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TextEncoder"]


class TextEncoder(nn.Module):
    """Encode token ids of a prompt text into tokens and one pooled vector.

    Parameters
    ----------
    vocab_size : int
        Number of words (id 0 = padding).
    dim : int
        Token width.
    depth : int
        Transformer layers.
    heads : int
        Attention heads.
    max_len : int
        Longest token sequence.

    Notes
    -----
    Input ``ids (P, T)`` long, ``pad (P, T)`` bool (True = padding). Output
    ``tokens (P, T, dim)`` and ``pooled (P, dim)`` (the ``[CLS]`` token).
    """

    def __init__(self, vocab_size: int, dim: int, depth: int = 2, heads: int = 4,
                 max_len: int = 48):
        super().__init__()
        self.max_len = int(max_len)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, max_len, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True,
                                           activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        x = self.norm(self.blocks(x, src_key_padding_mask=pad))
        return x, x[:, 0]
