"""v6 = v2 + query/key/value projections (shared attention, one LayerNorm).

The shared scores are now ``to_q(image) . to_k(text)`` and the values ``to_v(.)``. The
three projections are shared by both modalities, as in a standard attention layer, so
queries, keys and values can specialise, but the score matrix is still shared between
the two directions (text->image reuses it transposed). Single head.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v2
from .primitives import shared_attention
from .registry import register


@register("v6")
class CrossAttention(v2.CrossAttention):
    """Shared single-head attention over ``to_q`` / ``to_k`` / ``to_v`` projections."""

    #: Heads of the shared attention; v7 raises it to ``num_heads``.
    attention_heads: int = 1

    def build(self) -> None:
        super().build()
        self.to_q = nn.Linear(self.dim, self.dim)
        self.build_key_value()

    def build_key_value(self) -> None:
        """The key and value projections (a hook: v10_4 builds one shared K/V head)."""
        self.to_k = nn.Linear(self.dim, self.dim)
        self.to_v = nn.Linear(self.dim, self.dim)

    def exchange(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Shared attention with image queries, text keys and per-token values."""
        return shared_attention(
            self.to_q(image), self.to_k(text), self.to_v(image), self.to_v(text),
            num_heads=self.attention_heads, image_mask=image_mask, text_mask=text_mask,
            scale=self.scale, dual_softmax=self.dual_softmax,
        )  # fmt: skip
