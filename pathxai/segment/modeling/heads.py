"""Prediction heads: query selection by text (class head), mask, instance and presence."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MLP", "PromptHeads"]


class MLP(nn.Sequential):
    """Two-layer perceptron ``d_in → hidden → d_out`` with GELU."""

    def __init__(self, d_in: int, hidden: int, d_out: int):
        super().__init__(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class PromptHeads(nn.Module):
    """Turn query outputs into one mask, one instance map and one presence logit per pair.

    The class head embeds each query and scores it against the pooled text embedding
    (cosine / temperature); a softmax over queries weights the queries' mask and instance
    embeddings (the best-matching query dominates), which are dotted with the pixel
    embedding. Presence is predicted from the text and the weighted query output.

    Shapes: ``queries (N, Q, D)``, ``text_pooled (N, D)`` → ``mask_embed (N, E)``,
    ``inst_embed (N, E)``, ``presence_logit (N,)``, ``query_weights (N, Q)``.
    """

    def __init__(self, dim: int, embed_dim: int):
        super().__init__()
        self.class_embed = nn.Linear(dim, dim)
        self.text_proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.3))  # exp(2.3) ≈ 10
        self.mask_embed = MLP(dim, dim, embed_dim)
        self.inst_embed = MLP(dim, dim, embed_dim)
        self.mask_bias = MLP(dim, dim // 2, 2)
        self.presence = MLP(2 * dim, dim, 1)

    def forward(self, queries: torch.Tensor, text_pooled: torch.Tensor) -> dict:
        c = F.normalize(self.class_embed(queries), dim=-1)
        t = F.normalize(self.text_proj(text_pooled), dim=-1)
        sim = torch.einsum("nqd,nd->nq", c, t) * self.logit_scale.exp().clamp(max=100.0)
        w = sim.softmax(dim=-1)
        pooled = torch.einsum("nq,nqd->nd", w, queries)
        bias = self.mask_bias(pooled)
        return {
            "mask_embed": torch.einsum("nq,nqe->ne", w, self.mask_embed(queries)),
            "inst_embed": torch.einsum("nq,nqe->ne", w, self.inst_embed(queries)),
            "mask_bias": bias[:, 0],
            "inst_bias": bias[:, 1],
            "presence_logit": self.presence(torch.cat([text_pooled, pooled], -1))[:, 0],
            "query_weights": w,
        }
