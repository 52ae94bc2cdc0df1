"""v1 = v0 with one shared attention matrix, used as is and transposed.

Instead of two attentions, v1 computes one score matrix between image and text tokens.
Its softmax over the text axis gives the image->text weights. The same weights,
transposed, carry image values to the text tokens. Sharing ties the two directions
together: the model cannot express that "which words matter to this patch" differs
from "which patches matter to this word". Still no parameters and no normalisation.
"""

from __future__ import annotations

from torch import Tensor

from .primitives import CrossAttentionBase, shared_attention
from .registry import register


@register("v1")
class CrossAttention(CrossAttentionBase):
    """Shared attention matrix (see :func:`shared_attention`); no parameters.

    Args:
        dual_softmax: ``False`` (the original) reuses the image->text weights transposed;
            ``True`` re-normalises the shared scores over the image axis instead.
    """

    def __init__(
        self, dim: int = 256, num_heads: int = 8, dropout: float = 0.1, dual_softmax: bool = False
    ) -> None:
        super().__init__(dim, num_heads, dropout)
        self.dual_softmax = dual_softmax

    def build(self) -> None:
        super().build()
        self.scale = self.dim**-0.5

    def exchange(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Shared attention with the features themselves as queries, keys and values."""
        return shared_attention(
            image, text, image, text,
            image_mask=image_mask, text_mask=text_mask,
            scale=self.scale, dual_softmax=self.dual_softmax,
        )  # fmt: skip

    def fuse(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        return self.exchange(image, text, image_mask, text_mask)
