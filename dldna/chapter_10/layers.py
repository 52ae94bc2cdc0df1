"""Layers shared by every model of the chapter: attention, a masked mean, a learned temperature.

* :func:`attention`: multi-head scaled dot-product attention. The ViT, CLIP's text
  tower, the Perceiver, the cross-modal attention of section 10.5 and the versions of
  the ablation study all call it, so the chapter has one attention to read.
* :func:`masked_mean`: the mean over the real tokens of a padded sequence.
* :class:`LogitScale`: CLIP's learnable inverse temperature, stored as a log.

One mask convention everywhere: a mask is a ``torch.bool`` tensor where ``True`` marks a
real token that may be attended to (or averaged) and ``False`` padding. An attention
mask is a key mask ``[B, Nk]`` (the same keys for every query), or ``[B, Nq, Nk]``
when the allowed keys differ per query (a causal text model); a ``[B, 1|H, Nq|1, Nk]``
mask, the layout of :func:`torch.nn.functional.scaled_dot_product_attention`, is
accepted as it is. A tokenizer's ``attention_mask`` (1 = real token) becomes one with
``.bool()``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LogitScale",
    "attention",
    "check_head_dim",
    "check_mask",
    "check_temperature",
    "clamped_logit_scale",
    "check_tokens",
    "masked_mean",
    "masked_mean_weights",
    "masked_softmax",
    "merge_heads",
    "split_heads",
]


def check_head_dim(dim: int, num_heads: int) -> int:
    """Return ``dim // num_heads``; fail clearly when the heads cannot split ``dim``."""
    if num_heads < 1 or dim % num_heads != 0:
        divisors = [h for h in range(1, min(dim, 16) + 1) if dim % h == 0]
        raise ValueError(
            f"dim={dim} must be divisible by num_heads={num_heads}; "
            f"choose num_heads from {divisors} (or change dim)."
        )
    return dim // num_heads


def check_tokens(name: str, x: Tensor, dim: int) -> None:
    """``x`` must be floating-point token features ``[B, N, dim]`` with ``N >= 1``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, N, {dim}], got {type(x).__name__}.")
    if x.ndim != 3 or x.shape[-1] != dim or x.shape[1] < 1:
        hint = (
            " (a pooled [B, D] vector is not a token sequence: use a tower's .tokens or .unsqueeze(1))"
            if x.ndim == 2 else ""
        )  # fmt: skip
        raise ValueError(f"{name} must have shape [B, N, {dim}] with N >= 1, got {list(x.shape)}{hint}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}.")


def check_mask(name: str, mask: Tensor | None, tokens: Tensor) -> None:
    """``mask`` must be ``None`` or a ``torch.bool`` ``[B, N]`` matching ``tokens [B, N, D]``."""
    if mask is None:
        return
    expected = list(tokens.shape[:2])
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(
            f"{name} must be a torch.bool tensor of shape {expected} (True = real token, "
            f"False = padding), got {got}; convert e.g. an attention_mask with `.bool()`."
        )
    if list(mask.shape) != expected:
        raise ValueError(f"{name} must have shape {expected} (batch, tokens), got {list(mask.shape)}.")


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``[B, N, D]`` -> ``[B, H, N, D/H]``."""
    batch, length, dim = x.shape
    return x.reshape(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``[B, H, N, D/H]`` -> ``[B, N, D]``."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


def _attention_mask(mask: Tensor | None) -> Tensor | None:
    """A boolean mask in the layout ``[B, 1|H, 1|Nq, Nk]`` (see the module docstring)."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(
            f"An attention mask must be a torch.bool tensor (True = real token that may be "
            f"attended to, False = padding), got {got}; convert an attention_mask with .bool()."
        )
    if mask.ndim == 2:
        return mask[:, None, None, :]  # [B, 1, 1, Nk]
    if mask.ndim == 3:
        return mask[:, None]  # [B, 1, Nq, Nk]
    if mask.ndim == 4:
        return mask
    raise ValueError(
        f"An attention mask is [B, Nk] (keys) or [B, Nq, Nk] (keys per query); got shape "
        f"{list(mask.shape)}."
    )


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last axis (the keys), giving masked keys exactly zero weight.

    Args:
        scores: ``[B, H, Nq, Nk]`` attention logits.
        mask: an attention mask (see the module docstring) or ``None``.

    Masked scores are set to the dtype's most negative finite value (not ``-inf``) and
    the weights are zeroed afterwards, so a query whose keys are all padding gets an
    all-zero row instead of the ``NaN`` that ``-inf`` everywhere would produce.
    """
    keep = _attention_mask(mask)
    if keep is None:
        return scores.softmax(dim=-1)
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1).masked_fill(~keep, 0.0)


def attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    num_heads: int = 1,
    mask: Tensor | None = None,
    shared_kv: bool = False,
    dropout: float = 0.0,
    scale: float | None = None,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Multi-head scaled dot-product attention: ``softmax(Q K^T * scale) V`` per head.

    Args:
        query: ``[B, Nq, D]``, split into ``num_heads`` heads of ``D / num_heads``.
        key, value: ``[B, Nk, D]``, split like ``query``; with ``shared_kv=True`` they
            are one head ``[B, Nk, D / num_heads]`` that every query head reads
            (multi-query attention: fewer parameters, one K/V cache).
        num_heads: number of heads; 1 is plain single-head attention.
        mask: boolean, ``True`` = a real key that may be attended to; ``[B, Nk]`` or
            ``[B, Nq, Nk]`` (module docstring). Masked keys get exactly zero weight, and a
            query with no key left reads nothing: its output row is zero, not ``NaN``.
        dropout: dropout probability on the attention weights; pass 0 at evaluation
            (``p if module.training else 0.0``).
        scale: logit scale; default ``1 / sqrt(head_dim)``.
        return_weights: also return the weights ``[B, H, Nq, Nk]``.

    Returns:
        ``[B, Nq, D]``, and the weights when ``return_weights`` is set.

    The output comes from PyTorch's fused ``scaled_dot_product_attention``, which never
    stores the ``Nq x Nk`` weights. Only ``return_weights=True`` (to draw an attention
    map) computes them explicitly. With a single key (``Nk == 1``) every weight is 1
    and the output is that key's value whatever the query (erratum 3 of the ablation).
    """
    head_dim = check_head_dim(query.shape[-1], num_heads)
    q = split_heads(query, num_heads)  # [B, H, Nq, hd]
    if shared_kv:
        if key.shape[-1] != head_dim or value.shape[-1] != head_dim:
            raise ValueError(
                f"shared_kv=True expects key/value of width head_dim={head_dim}, "
                f"got {key.shape[-1]} and {value.shape[-1]}."
            )
        k, v = key.unsqueeze(1), value.unsqueeze(1)  # [B, 1, Nk, hd], read by every head
    else:
        k, v = split_heads(key, num_heads), split_heads(value, num_heads)  # [B, H, Nk, hd]
    keep = _attention_mask(mask)  # [B, 1|H, 1|Nq, Nk] or None

    if return_weights:
        scale = head_dim**-0.5 if scale is None else scale
        weights = masked_softmax(q @ k.transpose(-2, -1) * scale, keep)  # [B, H, Nq, Nk]
        dropped = F.dropout(weights, p=dropout) if dropout > 0 else weights
        return merge_heads(dropped @ v), weights  # [B, Nq, D], [B, H, Nq, Nk]

    has_key = None
    if keep is not None:
        # A query without any key would get NaN from the fused kernel: let it attend
        # everywhere and zero its output afterwards (no host sync, gradients stay finite).
        has_key = keep.any(dim=-1, keepdim=True)  # [B, 1|H, 1|Nq, 1]
        keep = keep | ~has_key
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=keep, dropout_p=dropout, scale=scale, enable_gqa=shared_kv
    )  # [B, H, Nq, hd]
    if has_key is not None:
        out = out.masked_fill(~has_key, 0.0)
    return merge_heads(out)  # [B, Nq, D]


def masked_mean_weights(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Averaging weights of a padded sequence: ``[..., T]`` bool -> ``[..., T]``.

    ``1 / (number of real tokens)`` at real tokens and 0 at padding, so a weighted sum
    with them is the mean over the real tokens (zero for a sequence with none).
    """
    keep = mask.to(dtype)
    return keep / keep.sum(dim=-1, keepdim=True).clamp(min=1.0)


def masked_mean(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the real tokens: ``tokens [..., T, D]``, ``mask [..., T]`` -> ``[..., D]``.

    ``mask`` is boolean (``True`` = real token) and broadcasts against ``tokens``' leading
    axes; padded positions never contribute, whatever values they hold. A sequence
    without a real token averages to zero. ``mask=None`` is the plain mean.
    """
    if mask is None:
        return tokens.mean(dim=-2)
    if mask.dtype != torch.bool or mask.shape[-1] != tokens.shape[-2]:
        raise ValueError(
            f"mask must be a torch.bool tensor [..., {tokens.shape[-2]}] (True = real token) for "
            f"tokens {list(tokens.shape)}; got {mask.dtype} {list(mask.shape)}."
        )
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # [..., T, 1]
    return (tokens * weights).sum(dim=-2) / weights.sum(dim=-2).clamp(min=1.0)  # [..., D]


def check_temperature(init_temperature: float, max_logit_scale: float) -> None:
    """A temperature must be positive and its inverse within the cap."""
    if not (0 < init_temperature and 1 / init_temperature <= max_logit_scale):
        raise ValueError(
            f"Need 0 < init_temperature and 1 / init_temperature <= max_logit_scale; got "
            f"init_temperature={init_temperature}, max_logit_scale={max_logit_scale}."
        )


def clamped_logit_scale(log_scale: Tensor, max_scale: float) -> Tensor:
    """``exp(log_scale)`` with the scale capped at ``max_scale`` (CLIP caps it at 100).

    Without the cap the learned temperature can shrink until the softmax is a hard max
    and training becomes unstable; above the cap the gradient is zero, so it stays there.
    """
    return log_scale.clamp(max=math.log(max_scale)).exp()


class LogitScale(nn.Module):
    """CLIP's learnable inverse temperature ``1 / tau`` that multiplies cosine similarities.

    The parameter ``log_scale`` stores ``log(1 / tau)``, so the scale stays positive
    whatever the optimiser does; it starts at ``tau = 0.07`` as in CLIP. Calling the
    module (or :attr:`scale`) returns ``exp(log_scale)`` capped at ``max_scale`` (100,
    CLIP's cap): without the cap the temperature can shrink until the softmax is a hard
    max; above it the gradient is zero, so the scale stays at the cap.
    """

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        check_temperature(init_temperature, max_scale)
        self.max_scale = float(max_scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))  # []

    def forward(self) -> Tensor:
        """``1 / tau``: a 0-d tensor, differentiable below the cap."""
        return clamped_logit_scale(self.log_scale, self.max_scale)

    @property
    def scale(self) -> Tensor:
        return self()

    @property
    def temperature(self) -> float:
        """The temperature in use, ``1 / scale``, as a number."""
        return float(1 / self().detach())

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, max_scale={self.max_scale:g}"
