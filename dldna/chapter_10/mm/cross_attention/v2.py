"""v2 = v1 + LayerNorm on the inputs.

One LayerNorm, shared by both modalities, puts every token on the same scale before the
shared attention. The attention logits then no longer grow with the raw feature scale,
the weakness of v0 and v1. Attended features are the normalised ones.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v1
from .registry import register


@register("v2")
class CrossAttention(v1.CrossAttention):
    """v1's shared attention applied to LayerNorm-ed inputs."""

    def build(self) -> None:
        super().build()
        self.norm = nn.LayerNorm(self.dim)

    def fuse(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        return self.exchange(self.norm(image), self.norm(text), image_mask, text_mask)
