"""v9 = v8 + pre-LN, a gated FFN (GELU) with dropout, and a residual around the FFN only.

The block becomes a pre-LN Transformer layer without the attention residual:

1. LayerNorm the inputs, then attend in both directions (v8), with dropout on the
   attention weights and after ``to_out``;
2. LayerNorm the attended features, pass them through a gated FFN, and add the FFN's
   output back to the attended features.

v8's output LayerNorm is gone: the FFN's pre-LN takes its place. There is no residual
from the input features. The original found that adding one made training fail (as
in v3), while the residual around the FFN trains. v9 is the base of v10_1 ... v11. Each
overrides one stage of :meth:`fuse` (``pre_attention``, ``_project``/``_attend``,
``post_attention``).
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v8
from .primitives import GatedFeedForward, attention
from .registry import register


@register("v9")
class CrossAttention(v8.CrossAttention):
    """Pre-LN bidirectional multi-head attention followed by a residual gated FFN.

    Args:
        ff_dim: hidden width of the gated FFN (default ``4 * dim``).
    """

    #: Whether ``_project`` returns one K/V head shared by all query heads (v10_4, v11).
    shared_kv: bool = False
    output_norm = False  # v8's output LayerNorm: the FFN's pre-LN below takes its place

    def __init__(
        self, dim: int = 256, num_heads: int = 8, dropout: float = 0.1, ff_dim: int | None = None
    ) -> None:
        self.ff_dim = ff_dim or 4 * dim  # read by build(), which super().__init__ calls
        super().__init__(dim, num_heads, dropout)

    def build(self) -> None:
        super().build()
        self.dropout = nn.Dropout(self.dropout_rate)
        self.ff_norm = nn.LayerNorm(self.dim)
        self.ffn = GatedFeedForward(self.dim, self.ff_dim, self.dropout_rate)

    def _attend(self, queries: Tensor, keys: Tensor, key_mask: Tensor | None, query_modality: str) -> Tensor:
        q, k, v = self._project(queries, keys, query_modality)
        return attention(
            q, k, v, num_heads=self.num_heads, mask=key_mask, shared_kv=self.shared_kv,
            dropout=self.dropout.p if self.training else 0.0,
        )  # fmt: skip

    def pre_attention(self, image: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-LN: normalise both modalities with the attention block's LayerNorm."""
        return self.norm(image), self.norm(text)

    def post_attention(
        self, image: Tensor, text: Tensor, image_attended: Tensor, text_attended: Tensor,
        image_mask: Tensor | None, text_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Hook between attention and FFN; v9 passes the attended features through."""
        return image_attended, text_attended

    def feed_forward(self, x: Tensor) -> Tensor:
        """Pre-LN gated FFN with its residual: ``x + FFN(LN(x))``."""
        return x + self.ffn(self.ff_norm(x))

    def fuse(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        image_in, text_in = self.pre_attention(image, text)
        image_attended, text_attended = self.exchange(image_in, text_in, image_mask, text_mask)
        image_attended = self.dropout(self.to_out(image_attended))  # [B, Ni, D]
        text_attended = self.dropout(self.to_out(text_attended))  # [B, Nt, D]
        image_attended, text_attended = self.post_attention(
            image, text, image_attended, text_attended, image_mask, text_mask
        )
        return self.feed_forward(image_attended), self.feed_forward(text_attended)
