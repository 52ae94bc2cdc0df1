"""Building blocks shared by every cross-attention version of the ablation study.

Each version file (``v0.py`` ... ``v11.py``) should show only the mechanism it adds, so
everything they have in common lives here:

* :func:`attention` (from :mod:`dldna.chapter_10.layers`, the chapter's one attention):
  multi-head scaled dot-product attention with an optional key mask, an optional single
  shared K/V head (multi-query attention) and optionally the attention weights.
  ``num_heads=1`` is plain single-head attention.
* :func:`shared_attention`: one score matrix serving both directions, the design of
  versions v1-v7 (image->text uses it as is, text->image uses it transposed). It needs
  the raw scores, so it computes them explicitly with the same helpers.
* :class:`GatedFeedForward`: the gated feed-forward network with GELU and dropout.
* :class:`CrossAttentionBase`: checks the inputs once for every version, then calls the
  version's :meth:`~CrossAttentionBase.fuse`.

Masks follow the chapter's one convention: a ``BoolTensor`` of shape ``[B, N]`` where
``True`` marks a real token and ``False`` padding. A padded key receives exactly zero
attention weight, so the values stored at padded positions can never leak into an output.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from dldna.chapter_10.layers import (
    attention,
    check_head_dim,
    check_mask,
    check_tokens,
    masked_softmax,
    merge_heads,
    split_heads,
)

__all__ = [
    "CrossAttentionBase",
    "GatedFeedForward",
    "attention",
    "check_head_dim",
    "masked_softmax",
    "merge_heads",
    "shared_attention",
    "split_heads",
]


def shared_attention(
    image_queries: Tensor,
    text_keys: Tensor,
    image_values: Tensor,
    text_values: Tensor,
    *,
    num_heads: int = 1,
    image_mask: Tensor | None = None,
    text_mask: Tensor | None = None,
    scale: float | None = None,
    dual_softmax: bool = False,
) -> tuple[Tensor, Tensor]:
    """One score matrix for both directions (the "shared attention" of v1-v7).

    The scores ``S = Q_image K_text^T * scale`` (``[B, H, Ni, Nt]``) are computed once.
    Image->text normalises ``S`` over the text axis (image tokens read text values).
    Text->image reuses the same weights transposed, as the original did:
    ``A^T`` (``[B, H, Nt, Ni]``). Its columns do not sum to 1, so each text token
    receives an unnormalised sum of image values. That asymmetry is part of the design
    the study measures. ``dual_softmax=True`` instead normalises ``S^T`` over the image
    axis, a proper attention distribution (and then, without projections, v1 equals v0).
    At ``Ni = Nt = 1`` both choices give weight 1: a plain copy (erratum 3).

    Masks act on the key axis of each direction. Transposed mode also zeroes the rows
    of padded image tokens, so padded images never feed the text side.

    Returns:
        ``(image_attended [B, Ni, D], text_attended [B, Nt, D])``.
    """
    head_dim = check_head_dim(image_queries.shape[-1], num_heads)
    scale = head_dim**-0.5 if scale is None else scale
    q = split_heads(image_queries, num_heads)  # [B, H, Ni, hd]
    k = split_heads(text_keys, num_heads)  # [B, H, Nt, hd]
    scores = q @ k.transpose(-2, -1) * scale  # [B, H, Ni, Nt]

    image_to_text = masked_softmax(scores, text_mask)  # [B, H, Ni, Nt]
    if dual_softmax:
        text_to_image = masked_softmax(
            scores.transpose(-2, -1), image_mask
        )  # [B, H, Nt, Ni]
    else:
        weights = image_to_text
        if image_mask is not None:
            weights = weights.masked_fill(~image_mask[:, None, :, None], 0.0)
        text_to_image = weights.transpose(-2, -1)  # [B, H, Nt, Ni]

    image_attended = merge_heads(image_to_text @ split_heads(text_values, num_heads))
    text_attended = merge_heads(text_to_image @ split_heads(image_values, num_heads))
    return image_attended, text_attended


class GatedFeedForward(nn.Module):
    """Gated feed-forward network: ``W_out(GELU(W_g x) * GELU(W_v x))`` with dropout.

    The gate branch decides, per hidden unit, how much of the value branch passes.
    As in the original v9, both branches use GELU and dropout, and dropout also
    follows the output projection.
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout))
        self.value = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout))
        self.out = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # [B, N, D] -> [B, N, D]
        return self.dropout(self.out(self.gate(x) * self.value(x)))


class CrossAttentionBase(nn.Module):
    """Common interface of every version: bidirectional image <-> text attention.

    ``forward(image_features [B, Ni, D], text_features [B, Nt, D], image_mask, text_mask)``
    returns ``(image_out [B, Ni, D], text_out [B, Nt, D])``. ``forward`` validates the
    inputs once and hands them to :meth:`fuse`, which each version implements.

    ``num_heads`` and ``dropout`` are accepted by every version so that one config
    builds any of them; versions without heads or dropout (as in the original) ignore them.

    A version adds its modules in :meth:`build`, which ``__init__`` calls once the sizes
    are set. Each ``build`` first calls ``super().build()``, so the parent's modules are
    created first and a version file shows only what it adds.
    """

    version: str = ""  # set by the registry decorator

    def __init__(self, dim: int = 256, num_heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}.")
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive int, got {num_heads!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.dim = dim
        self.num_heads = num_heads
        self.dropout_rate = float(dropout)
        self.build()

    def build(self) -> None:
        """Create the version's modules (parent first: seeded weights follow this order)."""

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        image_mask: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        check_tokens("image_features", image_features, self.dim)
        check_tokens("text_features", text_features, self.dim)
        if image_features.shape[0] != text_features.shape[0]:
            raise ValueError(
                f"image_features and text_features need the same batch size, got "
                f"{image_features.shape[0]} and {text_features.shape[0]}."
            )
        check_mask("image_mask", image_mask, image_features)
        check_mask("text_mask", text_mask, text_features)
        return self.fuse(image_features, text_features, image_mask, text_mask)

    def fuse(
        self,
        image: Tensor,
        text: Tensor,
        image_mask: Tensor | None,
        text_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """The version's computation on validated inputs; see the version's docstring."""
        raise NotImplementedError(f"{type(self).__name__} must implement fuse().")

    def extra_repr(self) -> str:
        return f"version={self.version!r}, dim={self.dim}, num_heads={self.num_heads}"
