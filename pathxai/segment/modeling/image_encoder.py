"""Hierarchical convolutional image encoder and a light FPN decoder to pixel embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvBNAct", "GrowthBlock", "ResBlock", "ImageEncoder", "PixelDecoder"]


class ConvBNAct(nn.Sequential):
    """3×3 (or k×k) convolution → BatchNorm → GELU."""

    def __init__(self, c_in: int, c_out: int, *, k: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.GELU(),
        )


class ResBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection; keeps shape ``(B, C, H, W)``."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = ConvBNAct(c, c)
        self.conv2 = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.conv2(self.conv1(x)))


class GrowthBlock(nn.Module):
    """Residual block ``x + BN(conv(GELU(BN(conv(x)))))`` with no activation after the sum and
    its last BatchNorm's scale and shift starting at zero: an identity until trained, so
    appending it to a trained encoder level leaves the network's output unchanged
    (:func:`pathxai.segment.build.grow_checkpoint`); keeps shape ``(B, C, H, W)``."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = ConvBNAct(c, c)
        self.conv2 = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )
        nn.init.zeros_(self.conv2[1].weight)
        nn.init.zeros_(self.conv2[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class ImageEncoder(nn.Module):
    """A 5-level convolutional pyramid (strides 2, 4, 8, 16, 32).

    Parameters
    ----------
    channels : sequence of int, length 5
        Feature channels at strides 2, 4, 8, 16 and 32.
    depths : sequence of int, length 5
        Residual blocks per level.
    extra : sequence of int, length 5, optional
        :class:`GrowthBlock` s appended to each level after its residual blocks (default
        none): the blocks a grown checkpoint adds to a trained encoder.

    Notes
    -----
    Input ``(B, 3, H, W)`` normalised RGB with ``H, W`` multiples of 32; output a list of
    five feature maps ``(B, channels[i], H / 2**(i+1), W / 2**(i+1))``.
    """

    def __init__(self, channels: Sequence[int], depths: Sequence[int],
                 extra: Sequence[int] | None = None):
        super().__init__()
        extra = (0,) * 5 if extra is None else tuple(extra)
        if len(channels) != 5 or len(depths) != 5 or len(extra) != 5:
            raise ValueError(f"channels, depths and extra need 5 entries, got {channels}, "
                             f"{depths}, {extra}")
        if min(int(d) for d in depths) < 0 or min(int(e) for e in extra) < 0:
            raise ValueError(f"block counts must be >= 0, got depths={tuple(depths)}, "
                             f"extra={extra}")
        self.channels = tuple(int(c) for c in channels)
        levels = []
        c_prev = 3
        for c, d, e in zip(self.channels, depths, extra):
            blocks: list[nn.Module] = [ConvBNAct(c_prev, c, stride=2)]
            blocks += [ResBlock(c) for _ in range(int(d))]
            blocks += [GrowthBlock(c) for _ in range(int(e))]
            levels.append(nn.Sequential(*blocks))
            c_prev = c
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats


class PixelDecoder(nn.Module):
    """Top-down FPN from the encoder pyramid to stride-2 per-pixel embeddings.

    Parameters
    ----------
    in_channels : sequence of int, length 5
        Encoder channels at strides 2..32.
    dims : sequence of int, length 5
        Decoder channels at strides 2..32 (coarse levels may be wider).
    embed_dim : int
        Channels of the output pixel embedding (stride 2).

    Notes
    -----
    Returns ``(pixel_embedding (B, embed_dim, H/2, W/2), coarse (B, dims[3], H/16, W/16))``;
    the stride-16 map is what the fusion module attends to.
    """

    def __init__(self, in_channels: Sequence[int], dims: Sequence[int], embed_dim: int):
        super().__init__()
        self.lateral = nn.ModuleList(
            [nn.Conv2d(ci, d, 1) for ci, d in zip(in_channels, dims)]
        )
        self.reduce = nn.ModuleList(
            [nn.Conv2d(dims[i + 1], dims[i], 1) for i in range(len(dims) - 1)]
        )
        self.smooth = nn.ModuleList([ConvBNAct(d, d) for d in dims])
        self.out = nn.Conv2d(dims[0], embed_dim, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.smooth[-1](self.lateral[-1](feats[-1]))
        coarse = x
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(self.reduce[i](x), size=feats[i].shape[-2:], mode="bilinear",
                               align_corners=False)
            x = self.smooth[i](self.lateral[i](feats[i]) + up)
            if i == 3:
                coarse = x
        return self.out(x), coarse
