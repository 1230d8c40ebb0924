"""The full text-prompted segmentation network (SEEM / PathSegmentor family, small)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .fusion import QueryFusion, sincos_position_2d
from .heads import PromptHeads
from .image_encoder import ImageEncoder, PixelDecoder
from .text_encoder import TextEncoder

__all__ = ["ModelConfig", "PromptSegmentationModel", "ImageState"]

#: input height and width must be multiples of this (the encoder's coarsest stride)
STRIDE = 32


@dataclass
class ModelConfig:
    """Architecture hyper-parameters (stored in every checkpoint's ``config.json``)."""

    vocab_size: int
    enc_channels: tuple = (16, 32, 64, 96, 128)
    enc_depths: tuple = (1, 1, 1, 1, 1)
    dec_dims: tuple = (32, 48, 64, 96, 128)
    embed_dim: int = 32
    dim: int = 96
    heads: int = 4
    text_depth: int = 2
    fusion_depth: int = 2
    num_queries: int = 8
    max_text_len: int = 48
    extra: dict = field(default_factory=dict)
    #: identity-initialised blocks appended per encoder level by growing a checkpoint
    #: (:func:`pathxai.segment.build.grow_checkpoint`); left out of :meth:`to_dict` when none
    enc_extra: tuple = (0, 0, 0, 0, 0)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (tuples become lists; ``enc_extra`` only when non-zero, so
        configs of models never grown stay as they were)."""
        d = asdict(self)
        if not any(self.enc_extra):
            d.pop("enc_extra")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        d = dict(d)
        for k in ("enc_channels", "enc_depths", "dec_dims", "enc_extra"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class ImageState:
    """The cached encoding of a batch of images (what ``set_image`` keeps).

    Attributes
    ----------
    pixel : Tensor (B, E, H/2, W/2)
        Per-pixel embeddings at stride 2.
    tokens : Tensor (B, L, D)
        Image tokens (stride 16) for cross-attention; ``L = H/16 * W/16``.
    pos : Tensor (1, L, D)
        Their position code.
    size : tuple of int
        Input ``(H, W)`` in pixels.
    """

    pixel: torch.Tensor
    tokens: torch.Tensor
    pos: torch.Tensor
    size: tuple


def _dot_pixels(embed: torch.Tensor, pixel: torch.Tensor, image_index: torch.Tensor
                ) -> torch.Tensor:
    """``embed (N, K, E)`` · ``pixel[image_index[n]] (E, h, w)`` → ``(N, K, h, w)``, scaled by
    ``E ** -0.5``, without copying the pixel embedding once per pair (pairs are grouped by
    image)."""
    scale = pixel.shape[1] ** -0.5
    if image_index.numel() == 0:
        return embed.new_zeros(0, embed.shape[1], *pixel.shape[-2:])
    parts, order = [], []
    for b in torch.unique(image_index).tolist():
        sel = torch.nonzero(image_index == b).flatten()
        parts.append(torch.einsum("nke,ehw->nkhw", embed[sel], pixel[b]))
        order.append(sel)
    out = torch.cat(parts) * scale
    inv = torch.empty_like(image_index)
    inv[torch.cat(order)] = torch.arange(image_index.numel(), device=image_index.device)
    return out[inv]


def _uniform_group(image_index: torch.Tensor, n_images: int) -> int:
    """``G`` when ``image_index == arange(n_images).repeat_interleave(G)`` with ``G > 1``
    (every image answers the same ``G`` prompts, image-major), else 1."""
    n = image_index.numel()
    if n_images < 1 or n % n_images or n // n_images < 2:
        return 1
    g = n // n_images
    expected = torch.arange(n_images, device=image_index.device).repeat_interleave(g)
    return g if bool(torch.equal(image_index, expected)) else 1


class PromptSegmentationModel(nn.Module):
    """Image encoder + text encoder + query fusion + prompt heads.

    ``encode_image`` runs once per image; ``decode`` answers any number of
    (image, prompt) pairs from the cached :class:`ImageState`, which is what makes many
    prompts cheap.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.enc_channels, cfg.enc_depths, cfg.enc_extra)
        self.decoder = PixelDecoder(cfg.enc_channels, cfg.dec_dims, cfg.embed_dim)
        self.image_proj = nn.Sequential(nn.Conv2d(cfg.dec_dims[3], cfg.dim, 1))
        self.text = TextEncoder(cfg.vocab_size, cfg.dim, cfg.text_depth, cfg.heads,
                                cfg.max_text_len)
        self.fusion = QueryFusion(cfg.dim, cfg.fusion_depth, cfg.heads, cfg.num_queries)
        self.heads = PromptHeads(cfg.dim, cfg.embed_dim)

    # ------------------------------------------------------------------ encoders
    def encode_image(self, images: torch.Tensor) -> ImageState:
        """Encode normalised images ``(B, 3, H, W)``, ``H, W`` multiples of 32."""
        h, w = images.shape[-2:]
        if h % STRIDE or w % STRIDE:
            raise ValueError(f"image size {(h, w)} must be a multiple of {STRIDE}; pad it first")
        feats = self.encoder(images)
        pixel, coarse = self.decoder(feats)
        tok = self.image_proj(coarse)
        b, d, gh, gw = tok.shape
        tokens = tok.flatten(2).transpose(1, 2)
        pos = sincos_position_2d(gh, gw, d, device=tok.device, dtype=tok.dtype)[None]
        return ImageState(pixel=pixel, tokens=tokens, pos=pos, size=(int(h), int(w)))

    def encode_text(self, ids: torch.Tensor, pad: torch.Tensor):
        """Token ids ``(P, T)`` and padding ``(P, T)`` → ``(tokens (P, T, D), pooled (P, D))``."""
        return self.text(ids, pad)

    # ------------------------------------------------------------------ decoding
    def decode(self, state: ImageState, image_index: torch.Tensor, text_tokens: torch.Tensor,
               text_pad: torch.Tensor, text_pooled: torch.Tensor, *,
               full_resolution: bool = True) -> dict:
        """Answer ``N`` (image, prompt) pairs.

        Parameters
        ----------
        state : ImageState
            From :meth:`encode_image`.
        image_index : LongTensor (N,)
            Which image of the batch each pair uses.
        text_tokens, text_pad, text_pooled : Tensors (N, T, D), (N, T), (N, D)
            The prompt of each pair (rows of :meth:`encode_text` output, gathered).
        full_resolution : bool
            Upsample logits from stride 2 to the input size.

        Returns
        -------
        dict
            ``mask_logits (N, H, W)``, ``inst_logits (N, H, W)`` (normalised
            distance-to-boundary, as a logit), ``presence_logits (N,)``, ``query_weights (N, Q)``.
        """
        group = _uniform_group(image_index, state.tokens.shape[0])
        if group > 1:   # G prompts per image, image-major: image K/V projected once per image
            q = self.fusion(state.tokens, state.pos, text_tokens, text_pad, group)
        else:
            q = self.fusion(state.tokens[image_index], state.pos, text_tokens, text_pad)
        out = self.heads(q, text_pooled)
        both = _dot_pixels(torch.stack([out["mask_embed"], out["inst_embed"]], 1),
                           state.pixel, image_index)  # (N, 2, h, w)
        both = both + torch.stack([out["mask_bias"], out["inst_bias"]], 1)[:, :, None, None]
        mask, inst = both[:, 0], both[:, 1]
        if full_resolution:
            both = F.interpolate(torch.stack([mask, inst], 1), size=state.size,
                                 mode="bilinear", align_corners=False)
            mask, inst = both[:, 0], both[:, 1]
        return {
            "mask_logits": mask,
            "inst_logits": inst,
            "presence_logits": out["presence_logit"],
            "query_weights": out["query_weights"],
        }

    def forward(self, images, ids, pad, image_index, prompt_index) -> dict:
        """Encode ``images (B,3,H,W)`` and prompts ``ids (P,T)``; decode pairs
        ``(image_index[n], prompt_index[n])``."""
        state = self.encode_image(images)
        tokens, pooled = self.encode_text(ids, pad)
        return self.decode(state, image_index, tokens[prompt_index], pad[prompt_index],
                           pooled[prompt_index])
