"""The 17 bidirectional cross-attention versions of chapter 10's ablation study.

Each ``vN`` module defines one ``CrossAttention`` class that adds one mechanism to its
parent version (see each module's docstring). Importing this package imports every
version, which registers it; build one by name::

    from dldna.chapter_10.mm.cross_attention import get_cross_attention
    layer = get_cross_attention("v9", {"dim": 256, "num_heads": 8})
    image_out, text_out = layer(image_tokens, text_tokens, image_mask, text_mask)

All versions take ``image_features [B, Ni, D]``, ``text_features [B, Nt, D]`` and
optional boolean masks (``True`` = real token) and return outputs of the same shapes.
"""

from __future__ import annotations

from . import (  # noqa: F401  (imported for their @register side effect, in natural order)
    v0,
    v1,
    v2,
    v3,
    v4,
    v5,
    v6,
    v7,
    v8,
    v9,
    v10_1,
    v10_2,
    v10_3,
    v10_4,
    v10_5,
    v10_6,
    v11,
)
from .primitives import CrossAttentionBase
from .registry import (
    REGISTRY,
    VERSIONS,
    UnknownVersionError,
    available_versions,
    get_cross_attention,
    register,
)

__all__ = [
    "REGISTRY",
    "VERSIONS",
    "CrossAttentionBase",
    "UnknownVersionError",
    "available_versions",
    "get_cross_attention",
    "register",
]
