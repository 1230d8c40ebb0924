"""Multimodal fusion: learnable queries cross-attend to image tokens and self-attend with text."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FusionLayer", "QueryFusion", "sincos_position_2d"]


def sincos_position_2d(h: int, w: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """2-D sine-cosine position code ``(h * w, dim)`` (row-major), ``dim`` divisible by 4."""
    quarter = dim // 4
    freq = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / max(quarter, 1)))
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None] * freq[None]
    xs = torch.arange(w, device=device, dtype=torch.float32)[:, None] * freq[None]
    pe_y = torch.cat([ys.sin(), ys.cos()], dim=1)[:, None, :].expand(h, w, 2 * quarter)
    pe_x = torch.cat([xs.sin(), xs.cos()], dim=1)[None, :, :].expand(h, w, 2 * quarter)
    pe = torch.cat([pe_y, pe_x], dim=-1).reshape(h * w, 4 * quarter)
    if pe.shape[1] < dim:
        pe = torch.nn.functional.pad(pe, (0, dim - pe.shape[1]))
    return pe.to(dtype) if dtype is not None else pe


class FusionLayer(nn.Module):
    """Cross-attention to image tokens, self-attention over ``[queries ‖ text]``, FFN.

    Shapes: ``queries (N, Q, D)``, ``image (N, L, D)``, ``image_pos (N, L, D)``,
    ``text (N, T, D)``, ``text_pad (N, T)`` bool; returns ``(queries, text)`` updated.

    With ``group = G > 1`` the ``N = B * G`` pairs are ``G`` prompts for each of ``B`` images
    (image-major) and ``image`` is ``(B, L, D)``: the queries of one image's ``G`` prompts are
    concatenated into one ``(G * Q)``-long sequence for the cross-attention. Each query's
    softmax runs over the keys only, so this is exactly the per-pair result, but the image
    keys and values are projected once per image instead of once per prompt.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.n1, self.n2, self.n3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, q, image, image_pos, text, text_pad, group: int = 1):
        h = self.n1(q)
        if group > 1:
            n, nq, d = h.shape
            hg = h.reshape(n // group, group * nq, d)
            q = q + self.cross(hg, image + image_pos, image, need_weights=False)[0].reshape(n, nq, d)
        else:
            q = q + self.cross(h, image + image_pos, image, need_weights=False)[0]
        seq = torch.cat([q, text], dim=1)
        h = self.n2(seq)
        pad = torch.cat([torch.zeros(q.shape[:2], dtype=torch.bool, device=q.device), text_pad],
                        dim=1)
        seq = seq + self.self_attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        seq = seq + self.ffn(self.n3(seq))
        nq = q.shape[1]
        return seq[:, :nq], seq[:, nq:]


class QueryFusion(nn.Module):
    """A stack of :class:`FusionLayer` with ``num_queries`` learnable queries.

    Parameters
    ----------
    dim : int
        Token width (image tokens, text tokens and queries share it).
    depth, heads : int
        Layers and attention heads.
    num_queries : int
        Learnable queries per (image, prompt) pair.
    """

    def __init__(self, dim: int, depth: int, heads: int, num_queries: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.layers = nn.ModuleList([FusionLayer(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, image, image_pos, text, text_pad, group: int = 1) -> torch.Tensor:
        """Return query outputs ``(N, Q, D)`` for ``N`` (image, prompt) pairs.

        ``image`` is ``(N, L, D)`` (one row per pair), or ``(N / group, L, D)`` when the pairs
        are ``group`` prompts per image in image-major order (see :class:`FusionLayer`).
        """
        q = self.queries.expand(text.shape[0], -1, -1)
        for layer in self.layers:
            q, text = layer(q, image, image_pos, text, text_pad, group)
        return self.norm(q)
