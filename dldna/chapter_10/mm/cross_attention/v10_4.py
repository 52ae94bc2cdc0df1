"""v10_4 = v9 + multi-query attention (per-head queries, one shared K/V head).

Every head keeps its own query projection (``to_q``: ``dim -> dim``), but all heads read
the same single key and value head (``to_kv``: ``dim -> 2 * head_dim``). The K/V
projections shrink by a factor of ``num_heads``. Multi-query attention (Shazeer, 2019)
is what many large models use to cut memory traffic at inference time.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from . import v9
from .primitives import check_head_dim
from .registry import register


@register("v10_4")
class CrossAttention(v9.CrossAttention):
    """v9 with ``to_k`` / ``to_v`` replaced by one shared head ``to_kv``."""

    shared_kv = True

    def build_key_value(self) -> None:
        self.to_kv = nn.Linear(self.dim, 2 * check_head_dim(self.dim, self.num_heads))  # [k; v] of one head

    def _project(self, queries: Tensor, keys: Tensor, query_modality: str) -> tuple[Tensor, Tensor, Tensor]:
        k, v = self.to_kv(keys).chunk(2, dim=-1)  # each [B, Nk, head_dim]
        return self.to_q(queries), k, v
