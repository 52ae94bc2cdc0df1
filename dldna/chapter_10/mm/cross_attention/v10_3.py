"""v10_3 = v9 + modality-specific context layers.

Before the attention, each modality's normalised features pass through their own small
layer (``Linear -> GELU -> Dropout``), so each side gets features of its own, refined
for the exchange, while the attention itself stays v9's.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v9
from .registry import register


def _context_layer(dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout))


@register("v10_3")
class CrossAttention(v9.CrossAttention):
    """v9 with ``image_context`` / ``text_context`` applied after the pre-LN."""

    def build(self) -> None:
        super().build()
        self.image_context = _context_layer(self.dim, self.dropout_rate)
        self.text_context = _context_layer(self.dim, self.dropout_rate)

    def pre_attention(self, image: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        image_norm, text_norm = super().pre_attention(image, text)
        return self.image_context(image_norm), self.text_context(text_norm)
