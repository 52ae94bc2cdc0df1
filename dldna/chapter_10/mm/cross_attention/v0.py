"""v0: independent bidirectional scaled dot-product attention, nothing else.

The starting point of the ablation: no parameters, no normalisation, no projection.
Image tokens attend to text tokens and, separately, text tokens attend to image tokens,
each with its own softmax over its own keys. Without normalisation the attention
logits grow with the scale of the input features.
"""

from __future__ import annotations

from torch import Tensor

from .primitives import CrossAttentionBase, attention
from .registry import register


@register("v0")
class CrossAttention(CrossAttentionBase):
    """Two independent single-head attentions with scale ``1 / sqrt(dim)``; no parameters.

    ``num_heads`` and ``dropout`` are accepted for the common interface and ignored.
    """

    def fuse(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        image_out = attention(image, text, text, mask=text_mask)  # [B, Ni, D]
        text_out = attention(text, image, image, mask=image_mask)  # [B, Nt, D]
        return image_out, text_out
