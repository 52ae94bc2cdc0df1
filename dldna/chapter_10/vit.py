"""Vision Transformer (section 10.5) written from scratch, plus MAE's patch masking.

The building blocks here (:class:`Attention`, :class:`MLP`, :class:`Block`) are the
standard pre-norm Transformer pieces; CLIP's text tower and the Perceiver reuse them.
The attention itself is :func:`dldna.chapter_10.layers.attention`, the one the whole
chapter uses.

At the ViT-B/16 configuration, :class:`VisionTransformer` has exactly as many parameters
as torchvision's ``vit_b_16`` (86,567,656) and :func:`load_torchvision_weights` copies a
torchvision model into it: the two compute the same function, which is the best proof
that the from-scratch code is the real architecture.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dldna.chapter_10.layers import attention

logger = logging.getLogger(__name__)

# torchvision's ViT uses LayerNorm(eps=1e-6); matching it keeps outputs identical.
LN_EPS = 1e-6


@dataclass
class ViTConfig:
    """Hyperparameters of a Vision Transformer; the defaults are ViT-B/16 at 224 px.

    ``num_classes=0`` drops the classification head, so the model returns the pooled
    class-token feature (``[B, dim]``): the form CLIP's image tower needs.
    """

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"image_size ({self.image_size}) must be divisible by patch_size "
                f"({self.patch_size}); pick a patch size that tiles the image."
            )
        if self.dim % self.heads != 0:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads}).")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def padding_mask_to_attn_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Turn a ``[B, L]`` padding mask (1 = real token, 0 = padding) into a boolean key mask.

    The result is ``[B, L]`` with ``True`` = "may be attended to", the chapter's one mask
    convention (see :mod:`dldna.chapter_10.layers`).
    """
    if attention_mask is None:
        return None
    if attention_mask.ndim != 2:
        raise ValueError(
            f"attention_mask must be [batch, length] with 1 for real tokens and 0 for "
            f"padding; got shape {tuple(attention_mask.shape)}."
        )
    keep = attention_mask.bool()
    if not bool(keep.any(dim=1).all()):
        raise ValueError(
            "Every sequence needs at least one real token (attention_mask row of all zeros): "
            "attention over nothing is undefined. Drop empty sequences from the batch."
        )
    return keep  # [B, L]


class Attention(nn.Module):
    """Multi-head attention: queries from ``x``, keys and values from ``context``.

    With ``context=None`` it is self-attention. ``attn_mask`` is boolean, ``True`` = may
    be attended to: ``[B, L_k]`` for padding, ``[B, L_q, L_k]`` when it differs per query
    (causal). The computation is :func:`~dldna.chapter_10.layers.attention`: PyTorch's
    fused ``scaled_dot_product_attention``, or with ``return_weights=True`` the explicit
    scores-softmax-sum, so the attention map can be inspected.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads}).")
        self.heads = heads
        self.head_dim = dim // heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        context = x if context is None else context
        k, v = self.kv(context).chunk(2, dim=-1)  # [B, Lk, D] each
        out = attention(
            self.q(x), k, v, num_heads=self.heads, mask=attn_mask,
            dropout=self.dropout if self.training else 0.0, return_weights=return_weights,
        )  # fmt: skip
        if return_weights:
            out, weights = out  # [B, Lq, D], [B, H, Lq, Lk]
            return self.proj(out), weights
        return self.proj(out)  # [B, Lq, D]


class MLP(nn.Module):
    """The Transformer's position-wise feed-forward network (Linear, GELU, Linear)."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm encoder block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``.

    Normalising *before* each sub-layer keeps the residual path an identity, which is
    why deep pre-norm Transformers train without learning-rate warm-up tricks.
    """

    def __init__(
        self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, mlp_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), attn_mask=attn_mask))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Cut an image into patches and embed each one.

    The embedding is a Conv2d with kernel = stride = patch size.

    Because the kernel never overlaps, each output position sees exactly one patch, and
    the convolution is the same linear map applied to every flattened patch.
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        dim: int = 768,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(
            in_channels, dim, kernel_size=patch_size, stride=patch_size
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                "PatchEmbed expects images of shape "
                f"[B, {expected[0]}, {expected[1]}, {expected[2]}], "
                f"got {tuple(images.shape)}; resize the images or build the model "
                "with a matching image_size/in_channels."
            )
        x = self.proj(images)  # [B, D, H/p, W/p]
        return x.flatten(2).transpose(1, 2)  # [B, N, D]


class VisionTransformer(nn.Module):
    """ViT: patch embedding, class token, learnable positions, encoder, head on the class token."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.output_dim = c.dim
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(torch.empty(1, c.num_patches + 1, c.dim).normal_(std=0.02))
        self.pos_drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.mlp_dim, c.dropout) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=LN_EPS)
        self.head = nn.Linear(c.dim, c.num_classes) if c.num_classes > 0 else nn.Identity()
        self.apply(init_linear)

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens after the final LayerNorm: ``[B, 1 + N, D]`` (class token first)."""
        x = self.patch_embed(images)  # [B, N, D]
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # [B, 1, D]
        x = self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed)  # [B, 1 + N, D]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The class token's final state, the image's summary: ``[B, D]``."""
        return self.forward_tokens(images)[:, 0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images))  # [B, num_classes] (or [B, D])


def init_linear(module: nn.Module) -> None:
    """Small-normal init for Linear layers (std 0.02, zero bias), as in GPT-2 and timm's ViT."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works for models built on the ``meta`` device too)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def torchvision_key_map(depth: int) -> dict[str, str]:
    """Map our parameter names to torchvision ``VisionTransformer`` state-dict names.

    The attention's fused ``in_proj`` of ``nn.MultiheadAttention`` is split by
    :func:`load_torchvision_weights` into our ``q`` and ``kv`` projections.
    """
    mapping = {
        "patch_embed.proj.weight": "conv_proj.weight",
        "patch_embed.proj.bias": "conv_proj.bias",
        "cls_token": "class_token",
        "pos_embed": "encoder.pos_embedding",
        "norm.weight": "encoder.ln.weight",
        "norm.bias": "encoder.ln.bias",
        "head.weight": "heads.head.weight",
        "head.bias": "heads.head.bias",
    }
    per_block = {
        "norm1": "ln_1",
        "attn.proj": "self_attention.out_proj",
        "norm2": "ln_2",
        "mlp.fc1": "mlp.0",
        "mlp.fc2": "mlp.3",
    }
    for i in range(depth):
        for ours, theirs in per_block.items():
            for kind in ("weight", "bias"):
                mapping[f"blocks.{i}.{ours}.{kind}"] = f"encoder.layers.encoder_layer_{i}.{theirs}.{kind}"
    return mapping


def load_torchvision_weights(
    model: VisionTransformer, state_dict: Mapping[str, torch.Tensor]
) -> VisionTransformer:
    """Copy a torchvision ``VisionTransformer`` state dict into ``model`` (strictly).

    Every one of our parameters must be found, and every torchvision tensor used, or a
    ``KeyError`` names what is missing: a silent partial load would score a random model.
    """
    dim, depth = model.config.dim, model.config.depth
    mapping = torchvision_key_map(depth)
    ours: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, source in mapping.items():
        if name.startswith("head.") and model.config.num_classes == 0:
            continue
        ours[name] = state_dict[source]
        used.add(source)
    for i in range(depth):
        prefix = f"encoder.layers.encoder_layer_{i}.self_attention"
        w, b = state_dict[f"{prefix}.in_proj_weight"], state_dict[f"{prefix}.in_proj_bias"]
        ours[f"blocks.{i}.attn.q.weight"], ours[f"blocks.{i}.attn.kv.weight"] = w[:dim], w[dim:]
        ours[f"blocks.{i}.attn.q.bias"], ours[f"blocks.{i}.attn.kv.bias"] = b[:dim], b[dim:]
        used.update({f"{prefix}.in_proj_weight", f"{prefix}.in_proj_bias"})
    unused = sorted(k for k in state_dict if k not in used and not k.startswith("heads."))
    if unused:
        raise KeyError(f"torchvision tensors with no counterpart in our ViT: {unused[:5]}")
    model.load_state_dict(ours, strict=True)
    return model


def random_masking(
    patches: torch.Tensor, mask_ratio: float = 0.75, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking by shuffling.

    Each sample gets random noise per patch; sorting it gives a random permutation whose
    first ``N_keep`` entries are kept. ``ids_restore`` is the inverse permutation, which
    the MAE decoder uses to put mask tokens back in place.

    Returns ``kept [B, N_keep, D]``, ``mask [B, N]`` (1 = masked, 0 = visible, in the
    original patch order) and ``ids_restore [B, N]``.
    """
    if patches.ndim != 3:
        raise ValueError(f"patches must be [batch, num_patches, dim]; got {tuple(patches.shape)}.")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(
            f"mask_ratio must be in [0, 1); got {mask_ratio} (at least one patch must stay visible)."
        )
    b, n, d = patches.shape
    n_keep = max(1, int(n * (1 - mask_ratio)))
    noise = torch.rand(b, n, generator=generator, device=generator.device if generator else patches.device)
    ids_shuffle = noise.argsort(dim=1).to(patches.device)  # [B, N], ascending: small noise is kept
    ids_restore = ids_shuffle.argsort(dim=1)  # [B, N]
    ids_keep = ids_shuffle[:, :n_keep]  # [B, N_keep]
    kept = patches.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, d))  # [B, N_keep, D]
    mask = torch.ones(b, n, device=patches.device)
    mask[:, :n_keep] = 0
    mask = mask.gather(1, ids_restore)  # [B, N] back in the original order
    return kept, mask, ids_restore


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, N, patch*patch*C]`` (row-major patches, pixels as p, q, c)."""
    b, c, h, w = images.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"Image size {h}x{w} is not divisible by patch_size {patch_size}.")
    gh, gw = h // patch_size, w // patch_size
    x = images.reshape(b, c, gh, patch_size, gw, patch_size)
    x = torch.einsum("bchpwq->bhwpqc", x)
    return x.reshape(b, gh * gw, patch_size * patch_size * c)


def unpatchify(
    patches: torch.Tensor, patch_size: int, channels: int = 3, grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """Inverse of :func:`patchify`; ``grid`` is (rows, cols) of patches, square by default."""
    b, n, pd = patches.shape
    if pd != patch_size * patch_size * channels:
        raise ValueError(
            f"Patch vectors have {pd} values, expected patch_size**2 * channels = "
            f"{patch_size * patch_size * channels}."
        )
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patches do not form a square grid; pass grid=(rows, cols).")
        grid = (side, side)
    gh, gw = grid
    x = patches.reshape(b, gh, gw, patch_size, patch_size, channels)
    x = torch.einsum("bhwpqc->bchpwq", x)
    return x.reshape(b, channels, gh * patch_size, gw * patch_size)


def masked_image(
    images: torch.Tensor, mask: torch.Tensor, patch_size: int, fill: float = 0.5
) -> torch.Tensor:
    """Paint masked patches (``mask`` 1 = masked, ``[B, N]``) with ``fill``: MAE's input picture."""
    patches = patchify(images, patch_size)  # [B, N, p*p*C]
    m = mask.unsqueeze(-1).to(patches.dtype)
    shown = patches * (1 - m) + fill * m
    gh, gw = images.shape[2] // patch_size, images.shape[3] // patch_size
    return unpatchify(shown, patch_size, images.shape[1], (gh, gw))
