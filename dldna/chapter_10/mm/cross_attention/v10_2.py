"""v10_2 = v9 + cross-gating (reported as a failure: every caption scored the same).

After attention, each modality computes a sigmoid gate from its attended features
concatenated with its own input features. The gate, times a learnable scale initialised
at 0.1, multiplies what crosses over from the other modality. The gate layer has no
normalisation and starts nearly closed (at most 0.1), so little cross-modal signal
reaches the FFN early in training.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from . import v9
from .registry import register

GATE_SCALE_INIT = 0.1


@register("v10_2")
class CrossAttention(v9.CrossAttention):
    """v9 with ``attended <- gate_scale * sigmoid(W [attended; input]) * attended``."""

    def build(self) -> None:
        super().build()
        self.image_gate = nn.Linear(2 * self.dim, self.dim)
        self.text_gate = nn.Linear(2 * self.dim, self.dim)
        self.gate_scale = nn.Parameter(torch.tensor(GATE_SCALE_INIT))

    def _gate(self, layer: nn.Linear, attended: Tensor, original: Tensor) -> Tensor:
        gate = torch.sigmoid(layer(torch.cat([attended, original], dim=-1)))  # [B, N, D] in (0, 1)
        return self.gate_scale * gate * attended

    def post_attention(
        self, image: Tensor, text: Tensor, image_attended: Tensor, text_attended: Tensor,
        image_mask: Tensor | None, text_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        image_out = self._gate(self.image_gate, image_attended, image)
        text_out = self._gate(self.text_gate, text_attended, text)
        return image_out, text_out
