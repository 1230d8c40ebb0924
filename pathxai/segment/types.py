"""Result types shared by every segmentation backend (model and classical baseline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PromptResult:
    """The answer to one text prompt on one image.

    Attributes
    ----------
    prompt : Any
        The :class:`~pathxai.segment.ontology.ParsedPrompt` answered.
    mask : ndarray of bool, shape (H, W)
        The binary mask at the resolution of the image given to ``set_image``.
    probability : ndarray of float32, shape (H, W)
        Per-pixel foreground probability in [0, 1].
    presence : float
        Probability in [0, 1] that the prompted object is present in the image at all;
        below the predictor's presence threshold the mask is empty.
    instances : ndarray of int32, shape (H, W), or None
        Instance labels (0 = background) for cell- and nucleus-level prompts.
    extra : dict
        Backend-specific diagnostics (e.g. timings).
    """

    prompt: Any
    mask: np.ndarray
    probability: np.ndarray
    presence: float
    instances: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def area_fraction(self) -> float:
        """Share of image pixels inside the mask."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    @property
    def n_objects(self) -> int | None:
        """Number of instances, or None for region prompts."""
        if self.instances is None:
            return None
        return int(np.unique(self.instances[self.instances > 0]).size)
