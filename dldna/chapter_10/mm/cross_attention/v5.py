"""v5 = v2 + a fixed 0.5 mixing of input and attended features (reported as a failure).

Like v3 it keeps part of each modality's own features, but as a fixed half-and-half
blend of the normalised input and the attended features, so the model cannot learn how
much of each to keep.
"""

from __future__ import annotations

from torch import Tensor

from . import v2
from .registry import register

MIX = 0.5


@register("v5")
class CrossAttention(v2.CrossAttention):
    """``0.5 * norm(x) + 0.5 * attended`` for each modality."""

    def fuse(
        self,
        image: Tensor,
        text: Tensor,
        image_mask: Tensor | None,
        text_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        image_norm, text_norm = self.norm(image), self.norm(text)
        image_attended, text_attended = self.exchange(
            image_norm, text_norm, image_mask, text_mask
        )
        image_out = MIX * image_norm + (1.0 - MIX) * image_attended
        text_out = MIX * text_norm + (1.0 - MIX) * text_attended
        return image_out, text_out
