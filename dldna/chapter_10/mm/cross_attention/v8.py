"""v8 = v7 with independent attention per direction (input and output LayerNorm).

v8 drops the shared score matrix. Image queries attend over text keys, and text queries
attend over image keys, each with its own softmax, multi-head, through ``to_q`` /
``to_k`` / ``to_v``. The two directions can now weigh tokens differently. Inputs are
LayerNorm-ed before, and outputs after, the attention (kept from v7).
"""

from __future__ import annotations

from torch import Tensor

from . import v7
from .primitives import attention
from .registry import register


@register("v8")
class CrossAttention(v7.CrossAttention):
    """Two independent multi-head attentions sharing ``to_q`` / ``to_k`` / ``to_v`` / ``to_out``."""

    def __init__(self, dim: int = 256, num_heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__(dim, num_heads, dropout)

    def _project(self, queries: Tensor, keys: Tensor, query_modality: str) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values for one direction (``query_modality`` is "image" or "text")."""
        return self.to_q(queries), self.to_k(keys), self.to_v(keys)

    def _attend(self, queries: Tensor, keys: Tensor, key_mask: Tensor | None, query_modality: str) -> Tensor:
        """One direction: ``queries`` [B, Nq, D] read ``keys`` [B, Nk, D] -> [B, Nq, D]."""
        q, k, v = self._project(queries, keys, query_modality)
        return attention(q, k, v, num_heads=self.num_heads, mask=key_mask)

    def exchange(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        image_attended = self._attend(image, text, text_mask, "image")  # [B, Ni, D]
        text_attended = self._attend(text, image, image_mask, "text")  # [B, Nt, D]
        return image_attended, text_attended
