"""v11 = v9 + multi-query attention (v10_4) + hierarchical fusion (v10_5).

The two mechanisms touch different stages, so v11 is simply both parents combined.
v10_5 supplies the levels (``_attend`` with ``level_projections`` and ``level_weights``),
and v10_4 supplies the shared K/V head (``_project`` with ``to_kv``). Python's method
resolution order (v11 -> v10_5 -> v10_4 -> v9) makes each level's attention a
multi-query attention. The original author found this combination the best.
"""

from __future__ import annotations

from . import v10_4, v10_5
from .registry import register


@register("v11")
class CrossAttention(v10_5.CrossAttention, v10_4.CrossAttention):
    """Hierarchical (``num_levels``) multi-query cross-attention on v9's block."""
