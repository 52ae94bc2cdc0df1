"""Section 10.5: cross-modal attention, where words look at image regions.

A dual encoder (:mod:`.multimodal_embedding`) squeezes a whole picture into one vector
before it ever meets the caption. Cross-modal attention keeps the *tokens*: image patch
vectors ``[Np, D]`` and word vectors ``[Lt, D]``. Each word (a query) reads the image
patches (keys and values) and collects the visual evidence that matches it; each patch
can read the words in the same way.

* :class:`CrossModalAttention`: multi-head attention with queries from one modality and
  keys/values from the other, a key padding mask, and the attention weights returned
  (to draw which patches a word looked at).
* :class:`HierarchicalCrossModalAttention`: first intra-modal self-attention in each
  modality (patches with patches, words with words), then cross-modal attention in both
  directions (text -> image and image -> text).
* :class:`CrossModalEmbedding`: towers -> hierarchical attention -> one score per
  image-text pair, trained and queried like the dual encoder.

Erratum 4 of the original chapter: its ``EnhancedMultimodalEmbedding_no_p`` fused image
``i`` with caption ``i`` and then scored ``combined @ combined.T``, the fused vectors
against *themselves*; that matrix is symmetric with a maximal diagonal whatever the
model learns, so it measures nothing about matching. Here every image is scored against
every caption, see :class:`CrossModalEmbedding`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dldna.chapter_10.encoders import ImageTower, TextTower
from dldna.chapter_10.examples import generate_example
from dldna.chapter_10.layers import (
    attention,
    check_head_dim,
    check_mask,
    check_temperature,
    check_tokens,
    masked_mean,
)
from dldna.chapter_10.multimodal_embedding import build_towers, check_towers
from dldna.chapter_10.training import (
    RetrievalModel,
    eval_mode,
    train_retrieval_model,
)
from dldna.data.cache import CachedSplit
from dldna.data.flickr8k import Flickr8kDataset
from dldna.loaders import profile_sizes
from dldna.runtime import Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "AttentionBlock",
    "CrossModalAttention",
    "CrossModalConfig",
    "CrossModalEmbedding",
    "Flickr8kDataset",
    "HierarchicalCrossModalAttention",
    "HierarchicalOutput",
    "Tokens",
    "build_crossmodal_embedding",
    "caption_attention",
    "generate_example",
    "plot_caption_attention",
    "train_crossmodal_embedding",
]


class CrossModalAttention(nn.Module):
    """Queries from one modality attend over keys and values from another.

    ``forward(queries [B, Lq, D], context [B, Lk, D], context_mask [B, Lk])``
    returns the attended queries ``[B, Lq, D]`` (for each query, a weighted sum of the
    context's values) and the weights ``[B, H, Lq, Lk]`` (``None`` with
    ``return_weights=False``, which takes the fused fast path). Padded context tokens
    (``False`` in the mask) get exactly zero weight. With the text as queries and the
    image as context, each word gathers the image regions that match it; the weights are
    the attention map over the image.

    :meth:`all_pairs` does the same for every (query item, context item) combination of
    two sets at once, sharing the projections: this is what scoring ``N_img x N_txt``
    pairs for retrieval needs.
    """

    def __init__(self, dim: int, num_heads: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.head_dim = check_head_dim(dim, num_heads)
        self.dim, self.num_heads = dim, num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        queries: Tensor,
        context: Tensor,
        context_mask: Tensor | None = None,
        return_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        check_tokens("queries", queries, self.dim)
        check_tokens("context", context, self.dim)
        if queries.shape[0] != context.shape[0]:
            raise ValueError(
                "queries and context must pair up item by item (same batch size); "
                f"got {queries.shape[0]} and {context.shape[0]}. "
                "For every combination of two sets use all_pairs()."
            )
        check_mask("context_mask", context_mask, context)
        out = attention(
            self.q_proj(queries), self.k_proj(context), self.v_proj(context),
            num_heads=self.num_heads, mask=context_mask,
            dropout=self.dropout.p if self.training else 0.0,
            return_weights=return_weights,
        )  # fmt: skip
        out, weights = out if return_weights else (out, None)
        return self.out_proj(out), weights  # [B, Lq, D], [B, H, Lq, Lk] or None

    def all_pairs(
        self, queries: Tensor, context: Tensor, context_mask: Tensor | None = None
    ) -> Tensor:
        """Attend every query item to every context item.

        ``[Q, Lq, D] x [C, Lk, D] -> [C, Q, Lq, D]``: the same numbers as ``forward``
        on the ``C * Q`` expanded pairs, but the projections run once per item instead
        of once per pair, and the attention takes the fused path (no
        ``[C, Q, H, Lq, Lk]`` weight tensor is kept).
        """
        check_tokens("queries", queries, self.dim)
        check_tokens("context", context, self.dim)
        check_mask("context_mask", context_mask, context)
        n_ctx, n_q, len_q = context.shape[0], queries.shape[0], queries.shape[1]
        # All query items as one long query sequence, shared by every context item.
        q = self.q_proj(queries).reshape(1, n_q * len_q, self.dim)
        q = q.expand(n_ctx, -1, -1)  # [C, Q*Lq, D]
        out = attention(
            q,
            self.k_proj(context),
            self.v_proj(context),
            num_heads=self.num_heads,
            mask=context_mask,
        )  # [C, Q*Lq, D]
        return self.out_proj(out.view(n_ctx, n_q, len_q, self.dim))  # [C, Q, Lq, D]


class AttentionBlock(nn.Module):
    """Pre-LayerNorm Transformer block: ``x + attn(LN(x))``, then ``x + FFN(LN(x))``.

    Self-attention is :class:`CrossModalAttention` with queries and context from the
    same sequence: intra-modal and cross-modal attention are one mechanism.
    """

    def __init__(self, dim: int, num_heads: int = 8, dropout: float = 0.1, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossModalAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_ratio * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_ratio * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.attn(h, h, mask, return_weights=False)[0])  # [B, N, D]
        return x + self.dropout(self.ffn(self.norm2(x)))


@dataclass
class HierarchicalOutput:
    """Everything :class:`HierarchicalCrossModalAttention` computes for ``B`` paired items."""

    image: Tensor  # [B, Np, D] image tokens after intra-modal attention
    text: Tensor  # [B, Lt, D] word tokens after intra-modal attention
    image_context: Tensor  # [B, Np, D] for each patch, the words it attended to
    text_context: Tensor  # [B, Lt, D] for each word, the patches it attended to
    text_to_image_weights: Tensor  # [B, H, Lt, Np] words (queries) over patches
    image_to_text_weights: Tensor  # [B, H, Np, Lt] patches (queries) over words


class HierarchicalCrossModalAttention(nn.Module):
    """Two levels: intra-modal self-attention in each modality, then cross-modal attention both ways.

    Level 1 lets patches exchange information with patches ("this red region is part of
    a circle left of the square") and words with words ("red" modifies "circle"), with
    separate weights per modality: images and text have different statistics. Level 2
    is asymmetric and bidirectional: words query patches (text -> image) and patches
    query words (image -> text), each direction with its own projections.

    Level 1 depends on one item only, so a retrieval model computes it once per image
    and once per caption (:meth:`encode_image`, :meth:`encode_text`); only level 2 runs
    per pair (:meth:`forward` for paired items, :meth:`all_pairs` for two whole sets).
    """

    def __init__(self, dim: int, num_heads: int = 8, dropout: float = 0.1, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.image_self = AttentionBlock(dim, num_heads, dropout, ffn_ratio)
        self.text_self = AttentionBlock(dim, num_heads, dropout, ffn_ratio)
        self.image_norm = nn.LayerNorm(dim)
        self.text_norm = nn.LayerNorm(dim)
        # No dropout at level 2: its weights are the attention maps we read, and for
        # retrieval they are [N_img, N_txt, heads, queries, keys], costly to mask randomly.
        self.text_to_image = CrossModalAttention(dim, num_heads)  # words read patches
        self.image_to_text = CrossModalAttention(dim, num_heads)  # patches read words

    def encode_image(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Level 1 for images: ``[B, Np, D] -> [B, Np, D]``."""
        return self.image_norm(self.image_self(tokens, mask))

    def encode_text(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Level 1 for captions: ``[B, Lt, D] -> [B, Lt, D]``; padded words are never attended to."""
        return self.text_norm(self.text_self(tokens, mask))

    def forward(
        self,
        image_tokens: Tensor,
        text_tokens: Tensor,
        image_mask: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> HierarchicalOutput:
        """Both levels for ``B`` paired items (image ``b`` with caption ``b``)."""
        image = self.encode_image(image_tokens, image_mask)  # [B, Np, D]
        text = self.encode_text(text_tokens, text_mask)  # [B, Lt, D]
        text_context, t2i = self.text_to_image(
            text, image, image_mask
        )  # [B, Lt, D], [B, H, Lt, Np]
        image_context, i2t = self.image_to_text(
            image, text, text_mask
        )  # [B, Np, D], [B, H, Np, Lt]
        return HierarchicalOutput(image, text, image_context, text_context, t2i, i2t)

    def all_pairs(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Level 2 for every image against every caption (inputs already through level 1).

        Returns ``(image_context [I, T, Np, D], text_context [I, T, Lt, D])``.
        """
        text_context = self.text_to_image.all_pairs(text, image, image_mask)  # [I, T, Lt, D]
        image_context = self.image_to_text.all_pairs(image, text, text_mask).transpose(0, 1)  # [I, T, Np, D]
        return image_context, text_context


class Tokens(NamedTuple):
    """A token sequence and its padding mask, batch first: what retrieval caches per item."""

    tokens: Tensor  # [N, L, D]
    mask: Tensor  # [N, L] bool, True = real token


@dataclass
class CrossModalConfig:
    """Sizes of :class:`CrossModalEmbedding` (the width ``D`` comes from the towers)."""

    num_heads: int = 8
    dropout: float = 0.1
    ffn_ratio: int = 2
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    #: How many image-caption pairs retrieval scores at once (memory ~ pairs x tokens x D).
    pairs_per_block: int = 4096

    def __post_init__(self) -> None:
        check_temperature(self.init_temperature, self.max_logit_scale)
        if self.pairs_per_block < 1:
            raise ValueError(f"pairs_per_block must be positive, got {self.pairs_per_block}.")


class CrossModalEmbedding(RetrievalModel):
    """Image-text matching with hierarchical cross-modal attention over token sequences.

    Pipeline: towers -> patch tokens and word tokens -> level 1 (intra-modal, once per
    item) -> level 2 (cross-modal, per pair) -> one score per (image, caption) pair.

    Why this score. Retrieval needs a full ``N_img x N_txt`` matrix, and fused features
    of a pair depend on both members, so they cannot be compared to each other as in the
    original's ``combined @ combined.T`` (erratum 4). Instead each pair is scored by how
    well the two sides *explain each other*, after SCAN (Lee et al., 2018):

    * text -> image: each word attends over the image's patches; the cosine between the
      word and the visual evidence it gathered says whether the image contains what the
      word names. Averaged over the caption's real words (padding excluded).
    * image -> text: each patch attends over the words; the same cosine, averaged over
      patches, says whether the caption accounts for what the image shows.

    ``score = logit_scale * (text->image + image->text) / 2``. A caption that mentions a
    "red circle" matches an image only if some patch looks like one, which pooled vectors
    cannot check, and the score is computed for every pair by
    :meth:`HierarchicalCrossModalAttention.all_pairs` without running a network per pair.
    Image ``i``'s level-1 tokens still depend on image ``i`` alone, so a collection of
    images is encoded once; only the light level-2 attention runs per pair.
    """

    def __init__(
        self, image_tower: ImageTower, text_tower: TextTower, config: CrossModalConfig | None = None
    ) -> None:
        super().__init__()
        self.config = config or CrossModalConfig()
        self.embedding_dim = check_towers(image_tower, text_tower)
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.attention = HierarchicalCrossModalAttention(
            self.embedding_dim, self.config.num_heads, self.config.dropout, self.config.ffn_ratio
        )
        self.init_logit_scale(self.config.init_temperature, self.config.max_logit_scale)
        self.pairs_per_block = self.config.pairs_per_block

    def embed_images(self, images: Tensor) -> Tokens:
        out = self.image_tower(images)
        # A CNN's feature grid has no padding (its mask is all True): no image mask is applied.
        return Tokens(self.attention.encode_image(out.tokens), out.mask)  # [B, Np, D]

    def embed_texts(self, input_ids: Tensor, attention_mask: Tensor) -> Tokens:
        out = self.text_tower(input_ids, attention_mask)
        return Tokens(self.attention.encode_text(out.tokens, out.mask), out.mask)  # [B, Lt, D]

    def score(self, image_rep: Tokens, text_rep: Tokens) -> Tensor:
        image, text = image_rep, text_rep
        image_context, text_context = self.attention.all_pairs(
            image.tokens, text.tokens, None, text.mask
        )
        with torch.autocast(device_type=image.tokens.device.type, enabled=False):
            words = F.normalize(text.tokens.float(), dim=-1)  # [T, Lt, D]
            patches = F.normalize(image.tokens.float(), dim=-1)  # [I, Np, D]
            word_match = torch.einsum(
                "tld,itld->itl", words, F.normalize(text_context.float(), dim=-1)
            )
            patch_match = torch.einsum(
                "ipd,itpd->itp", patches, F.normalize(image_context.float(), dim=-1)
            )
            text_to_image = masked_mean(word_match[..., None], text.mask[None])[
                ..., 0
            ]  # [I, T], real words
            image_to_text = patch_match.mean(dim=-1)  # [I, T], over patches
            return self.scale() * (text_to_image + image_to_text) / 2  # [I, T]


def build_crossmodal_embedding(
    runtime: Runtime,
    texts: Sequence[str] | None = None,
    dim: int | None = None,
    config: CrossModalConfig | None = None,
) -> tuple[CrossModalEmbedding, Any]:
    """A :class:`CrossModalEmbedding` on the run's towers (see ``build_towers``), and its tokenizer."""
    dim = dim or profile_sizes(runtime).embedding_dim
    config = config or CrossModalConfig(num_heads=8 if dim >= 256 else 4)
    image_tower, text_tower, tokenizer = build_towers(runtime, texts, dim)
    return CrossModalEmbedding(image_tower, text_tower, config).to(runtime.device), tokenizer


def train_crossmodal_embedding(
    model: CrossModalEmbedding,
    train_data: CachedSplit | Iterable,
    val_data: CachedSplit,
    num_epochs: int = 3,
    lr: float = 1e-4,
    device: torch.device | str | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **config: Any,
) -> pd.DataFrame:
    """Train a :class:`CrossModalEmbedding` with the same loop as the dual encoder."""
    if not isinstance(model, CrossModalEmbedding):
        raise TypeError(f"train_crossmodal_embedding trains a CrossModalEmbedding; got {type(model).__name__}.")
    return train_retrieval_model(model, train_data, val_data, num_epochs, lr, device, checkpoint_path, **config)


# -------------------------------------------------------------------- attention maps


@torch.no_grad()
def caption_attention(
    model: CrossModalEmbedding, image: Tensor, input_ids: Tensor, attention_mask: Tensor
) -> Tensor:
    """Where each word of a caption looks in an image: ``[L_real, h, w]``, one map per real token.

    ``image`` is one normalised image ``[3, H, W]`` (or ``[1, 3, H, W]``), ``input_ids`` and
    ``attention_mask`` one tokenised caption ``[L]`` (or ``[1, L]``). The maps are the
    text -> image attention weights averaged over heads, on the backbone's ``h x w``
    grid; each sums to 1 over the grid.
    """
    images = image if image.ndim == 4 else image[None]
    ids = input_ids if input_ids.ndim == 2 else input_ids[None]
    mask = attention_mask if attention_mask.ndim == 2 else attention_mask[None]
    if images.shape[0] != 1 or ids.shape[0] != 1:
        raise ValueError(
            f"caption_attention takes one image and one caption; got {images.shape[0]} and {ids.shape[0]}."
        )
    device = next(model.parameters()).device
    with eval_mode(model):
        image_out = model.image_tower(images.to(device))
        text_out = model.text_tower(ids.to(device), mask.to(device))
        out = model.attention(image_out.tokens, text_out.tokens, image_out.mask, text_out.mask)
    weights = out.text_to_image_weights[0].mean(dim=0).float().cpu()  # [Lt, Np]
    weights = weights[mask[0].bool().cpu()]  # [L_real, Np]
    side = math.isqrt(weights.shape[1])
    if side * side != weights.shape[1]:
        raise ValueError(f"Expected a square grid of image tokens; got {weights.shape[1]} tokens.")
    return weights.reshape(-1, side, side)  # [L_real, h, w]


def plot_caption_attention(
    model: CrossModalEmbedding,
    split: CachedSplit,
    caption: int,
    tokenizer: Any = None,
    max_words: int = 8,
    skip_special: bool = True,
):
    """Draw the image of caption ``caption`` of ``split`` and, per word, its attention over the patches.

    Returns the matplotlib figure. Special tokens ([CLS], [SEP]) are skipped by default;
    without a tokenizer the panels are labelled with token ids.
    """
    import matplotlib.pyplot as plt

    if not 0 <= caption < len(split):
        raise IndexError(f"caption must be in [0, {len(split)}), got {caption}.")
    row = int(split.image_index[caption])
    maps = caption_attention(
        model, split.image_batch(np.array([row]))[0], split.input_ids[caption], split.attention_mask[caption]
    )  # [L_real, h, w]
    ids = split.input_ids[caption][split.attention_mask[caption].bool()].tolist()
    words = tokenizer.convert_ids_to_tokens(ids) if tokenizer is not None else [str(i) for i in ids]
    special = set(getattr(tokenizer, "all_special_ids", [])) if skip_special else set()
    keep = [i for i, token_id in enumerate(ids) if token_id not in special][:max_words]

    picture = np.asarray(split.images[row])
    fig, axes = plt.subplots(1, len(keep) + 1, figsize=(2.0 * (len(keep) + 1), 2.4), squeeze=False)
    axes = axes[0]
    axes[0].imshow(picture)
    axes[0].set_title("image", fontsize=9)
    for ax, i in zip(axes[1:], keep):
        ax.imshow(picture)
        ax.imshow(maps[i].numpy(), cmap="inferno", alpha=0.6, interpolation="bilinear",
                  extent=(0, picture.shape[1], picture.shape[0], 0))  # fmt: skip
        ax.set_title(words[i], fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(split.captions[caption], fontsize=10)
    fig.tight_layout()
    return fig
