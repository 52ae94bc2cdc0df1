"""v10_5 = v9 + hierarchical multi-head attention (3 levels, learnable level weights).

The attention runs at several levels of abstraction. Level 1 sees
``LN_1(P_1 x)``, level 2 ``LN_2(P_2 level_1)``, and so on: each level re-projects the
previous one. At every level both directions run v9's multi-head attention; the levels'
outputs are then blended with ``softmax(level_weights)``, learnable and equal at the
start.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from . import v9
from .registry import register


@register("v10_5")
class CrossAttention(v9.CrossAttention):
    """v9 attention repeated over ``num_levels`` stacked projections, fused by learned weights.

    Args:
        num_levels: number of levels (the original used 3).
    """

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 8,
        dropout: float = 0.1,
        ff_dim: int | None = None,
        num_levels: int = 3,
    ) -> None:
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}.")
        self.num_levels = num_levels  # read by build(), which super().__init__ calls
        super().__init__(dim, num_heads, dropout, ff_dim)

    def build(self) -> None:
        super().build()
        levels, dim = range(self.num_levels), self.dim
        self.level_projections = nn.ModuleList(nn.Linear(dim, dim) for _ in levels)
        self.level_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in levels)
        self.level_weights = nn.Parameter(torch.zeros(self.num_levels))  # softmax -> equal weights

    def _attend(self, queries: Tensor, keys: Tensor, key_mask: Tensor | None, query_modality: str) -> Tensor:
        weights = self.level_weights.softmax(dim=0)  # [L]
        fused = torch.zeros_like(queries)  # [B, Nq, D]
        for weight, project, norm in zip(weights, self.level_projections, self.level_norms):
            queries, keys = norm(project(queries)), norm(project(keys))  # next, more abstract level
            fused = fused + weight * super()._attend(queries, keys, key_mask, query_modality)
        return fused
