"""v10_1 = v9 + modality-specific Q/K/V projections (reported as a failure).

v9 projects both modalities with the same ``to_q`` / ``to_k`` / ``to_v``. v10_1 gives
each modality its own three projections: image queries meet text keys made by the
text's own ``to_k``, and so on. This adds ``3 * (dim^2 + dim)`` parameters. The original
trained it into a model that picked the wrong caption: with fully separate spaces, the
two modalities must also learn to meet.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v9
from .registry import register

MODALITIES = ("image", "text")
_OTHER = {"image": "text", "text": "image"}


@register("v10_1")
class CrossAttention(v9.CrossAttention):
    """v9 with ``to_q`` / ``to_k`` / ``to_v`` replaced by one projection per modality."""

    def build(self) -> None:
        super().build()
        dim = self.dim
        self.to_q = nn.ModuleDict({m: nn.Linear(dim, dim) for m in MODALITIES})
        self.to_k = nn.ModuleDict({m: nn.Linear(dim, dim) for m in MODALITIES})
        self.to_v = nn.ModuleDict({m: nn.Linear(dim, dim) for m in MODALITIES})

    def _project(self, queries: Tensor, keys: Tensor, query_modality: str) -> tuple[Tensor, Tensor, Tensor]:
        key_modality = _OTHER[query_modality]
        return (
            self.to_q[query_modality](queries),
            self.to_k[key_modality](keys),
            self.to_v[key_modality](keys),
        )
