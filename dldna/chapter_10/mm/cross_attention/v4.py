"""v4 = v2 + modality-specific linear projections.

Each modality gets its own ``Linear(dim, dim)`` applied after the shared LayerNorm. The
projected features are used for the shared scores and as the values. This lets each
modality move into a space where dot products with the other modality are meaningful.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v2
from .registry import register


@register("v4")
class CrossAttention(v2.CrossAttention):
    """v2 with ``image_proj`` / ``text_proj`` between the LayerNorm and the attention."""

    def build(self) -> None:
        super().build()
        self.image_proj = nn.Linear(self.dim, self.dim)
        self.text_proj = nn.Linear(self.dim, self.dim)

    def fuse(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        image_proj = self.image_proj(self.norm(image))  # [B, Ni, D]
        text_proj = self.text_proj(self.norm(text))  # [B, Nt, D]
        return self.exchange(image_proj, text_proj, image_mask, text_mask)
