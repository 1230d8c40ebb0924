"""A plain U-Net (Ronneberger et al. 2015): the single-task baseline of the segmentor.

Four resolution levels (strides 1, 2, 4, 8): two 3×3 convolution → BatchNorm → ReLU per
level, 2×2 max-pooling down, bilinear ×2 upsampling and skip concatenation up, a 1×1
convolution to ``out_channels`` logits at full resolution. Input sides must be multiples of
:data:`UNET_STRIDE` (pad before calling).

Sizes (:data:`UNET_SIZES`, ``in_channels=3, out_channels=1``)::

    "small"   channels (16, 32, 64, 128)   ~0.49 M parameters (the default)
    "medium"  channels (29, 58, 116, 232)  ~1.6 M parameters, about the size of the
                                           text-prompted model's "tiny" architecture
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet", "UNET_SIZES", "UNET_STRIDE"]

#: channel widths of the named U-Net sizes (finest level first)
UNET_SIZES: dict[str, tuple[int, int, int, int]] = {
    "small": (16, 32, 64, 128),
    "medium": (29, 58, 116, 232),
}
#: input sides must be multiples of this (three 2×2 poolings)
UNET_STRIDE = 8


class DoubleConv(nn.Sequential):
    """(3×3 conv → BatchNorm → ReLU) × 2; ``(B, c_in, H, W) -> (B, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Plain 4-level U-Net returning per-pixel logits.

    Parameters
    ----------
    in_channels : int
        Input channels (3 for RGB).
    out_channels : int
        Output logit channels (1 for one binary category).
    channels : sequence of 4 int or str
        Widths of the four levels, finest first, or a name of :data:`UNET_SIZES`
        (default ``"small"``, ~0.49 M parameters).

    Raises
    ------
    ValueError
        When ``channels`` is not four positive widths or a known size name.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1,
                 channels: Sequence[int] | str = "small"):
        super().__init__()
        if isinstance(channels, str):
            if channels not in UNET_SIZES:
                raise ValueError(f"unknown U-Net size {channels!r}; known: {sorted(UNET_SIZES)}")
            channels = UNET_SIZES[channels]
        ch = tuple(int(c) for c in channels)
        if len(ch) != 4 or min(ch) < 1:
            raise ValueError(f"channels must be 4 positive widths (finest first), got {channels!r}")
        self.in_channels, self.out_channels, self.channels = int(in_channels), int(out_channels), ch
        self.down = nn.ModuleList(
            [DoubleConv(in_channels, ch[0])] + [DoubleConv(ch[i - 1], ch[i]) for i in range(1, 4)]
        )
        self.up = nn.ModuleList([DoubleConv(ch[i + 1] + ch[i], ch[i]) for i in (2, 1, 0)])
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def config(self) -> dict:
        """Constructor arguments as a JSON-serialisable dict."""
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "channels": list(self.channels)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, out_channels, H, W)`` of ``x (B, in_channels, H, W)``.

        ``H`` and ``W`` must be multiples of :data:`UNET_STRIDE`.
        """
        if x.shape[-1] % UNET_STRIDE or x.shape[-2] % UNET_STRIDE:
            raise ValueError(f"U-Net input sides must be multiples of {UNET_STRIDE}, "
                             f"got {tuple(x.shape[-2:])}; pad the image first")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)
