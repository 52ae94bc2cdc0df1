"""v7 = v6 made multi-head, plus an output projection and an output LayerNorm (reported as a failure).

The shared score matrix is split into ``num_heads`` heads, each with its own part of the
projections, and the heads' outputs go through ``to_out`` and a LayerNorm shared by both
modalities. The heads still share one matrix between the two directions.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v6
from .primitives import check_head_dim
from .registry import register


@register("v7")
class CrossAttention(v6.CrossAttention):
    """Shared multi-head attention -> ``to_out`` -> ``out_norm``."""

    #: Whether the block ends with ``out_norm``; v9 replaces it by the FFN's pre-LN.
    output_norm: bool = True

    def build(self) -> None:
        super().build()
        self.attention_heads = self.num_heads
        self.scale = check_head_dim(self.dim, self.num_heads) ** -0.5
        self.to_out = nn.Linear(self.dim, self.dim)
        if self.output_norm:
            self.out_norm = nn.LayerNorm(self.dim)

    def fuse(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        image_attended, text_attended = super().fuse(image, text, image_mask, text_mask)
        return self.out_norm(self.to_out(image_attended)), self.out_norm(self.to_out(text_attended))
