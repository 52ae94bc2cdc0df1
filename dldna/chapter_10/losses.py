"""Contrastive objectives of the chapter: CLIP's symmetric loss, InfoNCE, NT-Xent, triplet.

They live in one module, apart from any model, as in open_clip: a model produces
embeddings (and a temperature), a loss compares them. Every function returns the mean
over the batch by default (``reduction="none"`` gives one value per example).

Conventions: embeddings are ``[N, D]``; a similarity is a dot product of L2-normalised
vectors (cosine similarity); dividing it by a temperature ``tau`` (or multiplying by
CLIP's ``logit_scale = 1 / tau``) sharpens the softmax over candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from dldna.registry import Registry

logger = logging.getLogger(__name__)

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}.")
    if reduction == "none":
        return values
    return values.mean() if reduction == "mean" else values.sum()


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must both be [N, D] with the same shape; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}."
        )


def contrastive_loss(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CLIP's symmetric cross-entropy over a ``[B, B]`` image-text similarity matrix.

    Row ``i`` holds image ``i`` against every caption in the batch, column ``j`` caption
    ``j`` against every image; the matching pairs are on the diagonal. The image->text
    loss is a cross-entropy over each row, the text->image loss over each column, and
    the result is their average: both encoders get the same pressure to align.
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(
            f"contrastive_loss expects a square [B, B] logits matrix (images x texts, "
            f"matching pairs on the diagonal); got {tuple(logits.shape)}."
        )
    targets = torch.arange(logits.shape[0], device=logits.device)
    loss_i2t = F.cross_entropy(logits, targets, reduction="none")  # [B], one per image
    loss_t2i = F.cross_entropy(logits.t(), targets, reduction="none")  # [B], per text
    return _reduce((loss_i2t + loss_t2i) / 2, reduction)


class ClipLoss(nn.Module):
    """open_clip-style loss module: embeddings and ``logit_scale`` in, scalar loss out.

    ``logit_scale`` is the *multiplier* (``exp`` of the stored log-scale, as returned by
    :attr:`dldna.chapter_10.clip.CLIP.scale`), i.e. ``1 / temperature``.
    """

    def forward(
        self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float
    ) -> torch.Tensor:
        _check_pair(image_features, text_features, ("image_features", "text_features"))
        logits = logit_scale * image_features @ text_features.t()  # [B, B]
        return contrastive_loss(logits)


def info_nce(
    query: torch.Tensor,
    positive_key: torch.Tensor,
    negative_keys: torch.Tensor | None = None,
    temperature: float = 0.1,
    reduction: str = "mean",
) -> torch.Tensor:
    """InfoNCE: pick the positive key out of a set of candidates with a softmax.

    ``query`` and ``positive_key`` are ``[N, D]``, row ``i`` of one matching row
    ``i`` of the other. Without ``negative_keys`` the other rows' positives serve as
    negatives (in-batch negatives, as in CLIP's one direction). ``negative_keys`` may
    be ``[M, D]`` (the same negatives for every query) or ``[N, M, D]`` (negatives per
    query). All inputs are L2-normalised here, so similarities are cosines in
    ``[-1, 1]``.
    """
    _check_pair(query, positive_key, ("query", "positive_key"))
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}.")
    q, p = F.normalize(query, dim=-1), F.normalize(positive_key, dim=-1)
    if negative_keys is None:
        logits = q @ p.t()  # [N, N], positives on the diagonal
        targets = torch.arange(q.shape[0], device=q.device)
    else:
        n = F.normalize(negative_keys, dim=-1)
        if n.ndim == 2 and n.shape[1] == q.shape[1]:
            negatives = q @ n.t()  # [N, M]
        elif n.ndim == 3 and n.shape[0] == q.shape[0] and n.shape[2] == q.shape[1]:
            negatives = torch.einsum("nd,nmd->nm", q, n)  # [N, M]
        else:
            n_q, d = q.shape
            raise ValueError(
                f"negative_keys must be [M, {d}] or [{n_q}, M, {d}]; "
                f"got {tuple(negative_keys.shape)}."
            )
        positives = (q * p).sum(dim=-1, keepdim=True)  # [N, 1]
        # [N, 1 + M], the positive at index 0
        logits = torch.cat([positives, negatives], dim=1)
        targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    losses = F.cross_entropy(logits / temperature, targets, reduction="none")  # [N]
    return _reduce(losses, reduction)


def nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, reduction: str = "mean"
) -> torch.Tensor:
    """SimCLR's NT-Xent (normalised temperature-scaled cross-entropy).

    ``z1[i]`` and ``z2[i]`` are two augmented views of example ``i``. Stacking them gives
    ``2N`` views; for each view the positive is its partner, the other ``2N - 2`` views
    are negatives, and its similarity with itself is removed from the softmax (it would
    be the trivially largest). The loss is averaged over all ``2N`` views.
    """
    _check_pair(z1, z2, ("z1", "z2"))
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}.")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=-1)  # [2N, D]
    sim = z @ z.t() / temperature  # [2N, 2N]
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # partner index
    return _reduce(F.cross_entropy(sim, targets, reduction="none"), reduction)


#: Distance name -> row-wise ``d(a [N, D], b [N, D]) -> [N]``; add one with
#: ``@register_distance("name")``.
DISTANCES: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("distance")
register_distance = DISTANCES.register


@register_distance("euclidean")
def euclidean_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L2 distance ``||a - b||``."""
    return torch.linalg.vector_norm(a - b, dim=-1)


@register_distance("cosine")
def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - cos(a, b)``: 0 for the same direction, 2 for opposite ones."""
    return 1 - F.cosine_similarity(a, b, dim=-1)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.2,
    distance: str = "euclidean",
    reduction: str = "mean",
) -> torch.Tensor:
    """``max(0, d(a, p) - d(a, n) + margin)``: the negative must be farther by ``margin``.

    Unlike the softmax losses above, a triplet that already satisfies the margin
    contributes zero loss and zero gradient. Inputs are used as given; normalise them
    first if the margin is meant on the unit sphere.
    """
    _check_pair(anchor, positive, ("anchor", "positive"))
    _check_pair(anchor, negative, ("anchor", "negative"))
    d = DISTANCES.get(distance)  # an unknown name lists the known ones
    losses = F.relu(d(anchor, positive) - d(anchor, negative) + margin)  # [N]
    return _reduce(losses, reduction)
