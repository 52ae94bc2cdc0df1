"""v10_6 = v9 + a contrastive projection added back into the features (reported as a failure).

After attention, both modalities are mapped by ``contrast_proj`` and L2-normalised, as
for a contrastive loss. Their cosine similarities then weight the other modality's
normalised vectors, and the result is added straight onto the attended features. The
similarity signal is thus written into the features themselves. The original author
saw this distort them, as the residual of v3 did.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from dldna.chapter_10.layers import masked_mean_weights

from . import v9
from .registry import register


def _masked_mean_weights(similarity: Tensor, key_mask: Tensor | None) -> Tensor:
    """Average over the real keys: ``[B, Nq, Nk]`` similarities -> weights, padding at 0."""
    if key_mask is None:
        return similarity / similarity.shape[-1]
    return similarity * masked_mean_weights(key_mask, similarity.dtype)[:, None, :]  # [B, 1, Nk]


@register("v10_6")
class CrossAttention(v9.CrossAttention):
    """v9 with ``attended += mean_k(cos(z_q, z_k) * z_k)``, ``z = normalize(contrast_proj(attended))``."""

    def build(self) -> None:
        super().build()
        self.contrast_proj = nn.Linear(self.dim, self.dim)

    def post_attention(
        self, image: Tensor, text: Tensor, image_attended: Tensor, text_attended: Tensor,
        image_mask: Tensor | None, text_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        image_z = F.normalize(self.contrast_proj(image_attended), dim=-1)  # [B, Ni, D]
        text_z = F.normalize(self.contrast_proj(text_attended), dim=-1)  # [B, Nt, D]
        similarity = image_z @ text_z.transpose(-2, -1)  # [B, Ni, Nt] cosine similarities
        image_out = image_attended + _masked_mean_weights(similarity, text_mask) @ text_z
        text_out = text_attended + _masked_mean_weights(similarity.transpose(-2, -1), image_mask) @ image_z
        return image_out, text_out
