"""Fusion strategies of section 10.3.4: early, late and gated (dynamic-weighting) fusion.

Every module takes one pooled feature vector per modality (``[B, d_m]``, e.g. a ViT
and a BERT [CLS] vector) and returns class logits.

* :class:`EarlyFusion` concatenates the features and classifies the joint vector: the
  classifier can model interactions between modalities from the start.
* :class:`LateFusion` classifies each modality on its own and averages the logits, like
  an ensemble: robust when one modality is missing or noisy, blind to interactions.
* :class:`GatedFusion` projects each modality to a common size and mixes them with
  weights computed *from the input* (a softmax over modalities): the model decides, per
  example, how much to trust each modality (the "dynamic weighting" of the text).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)


def _check_dims(feature_dims: Sequence[int], num_classes: int) -> list[int]:
    dims = [int(d) for d in feature_dims]
    if len(dims) < 2 or any(d <= 0 for d in dims):
        raise ValueError(
            f"feature_dims needs a positive size for each of at least two modalities; got {feature_dims}."
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}.")
    return dims


def _check_features(features: Sequence[torch.Tensor], dims: Sequence[int]) -> None:
    if len(features) != len(dims):
        raise ValueError(
            f"Expected {len(dims)} modality tensors (one per feature_dims entry), got {len(features)}."
        )
    batch = features[0].shape[0]
    for i, (x, d) in enumerate(zip(features, dims, strict=True)):
        if x.ndim != 2 or x.shape != (batch, d):
            raise ValueError(
                f"Modality {i} must be [{batch}, {d}]; got {tuple(x.shape)}. Pool token "
                f"sequences to one vector per example first."
            )


def _classifier(in_dim: int, num_classes: int, hidden_dim: int | None, dropout: float) -> nn.Module:
    if hidden_dim is None:
        return nn.Linear(in_dim, num_classes)
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, num_classes)
    )


class EarlyFusion(nn.Module):
    """Concatenate all modality features, then a linear classifier (or an MLP if ``hidden_dim``)."""

    def __init__(
        self,
        feature_dims: Sequence[int],
        num_classes: int,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.feature_dims = _check_dims(feature_dims, num_classes)
        self.classifier = _classifier(sum(self.feature_dims), num_classes, hidden_dim, dropout)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        _check_features(features, self.feature_dims)
        joint = torch.cat(features, dim=-1)  # [B, sum(d_m)], e.g. 768 + 768 = 1536
        return self.classifier(joint)  # [B, C]


class LateFusion(nn.Module):
    """One classifier per modality; the logits are averaged with fixed ``weights``.

    ``weights`` (one per modality, normalised to sum to 1) default to a plain average.
    ``return_per_modality=True`` in ``forward`` also returns each modality's own logits
    ``[M, B, C]``, to see which modality is right when they disagree.
    """

    def __init__(
        self,
        feature_dims: Sequence[int],
        num_classes: int,
        weights: Sequence[float] | None = None,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.feature_dims = _check_dims(feature_dims, num_classes)
        self.classifiers = nn.ModuleList(
            _classifier(d, num_classes, hidden_dim, dropout) for d in self.feature_dims
        )
        w = (
            torch.ones(len(self.feature_dims))
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float)
        )
        if w.shape != (len(self.feature_dims),) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(
                f"weights must be {len(self.feature_dims)} non-negative numbers, not all zero; got {weights}."
            )
        self.register_buffer("weights", w / w.sum())

    def forward(
        self, *features: torch.Tensor, return_per_modality: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        _check_features(features, self.feature_dims)
        per_modality = torch.stack(
            [clf(x) for clf, x in zip(self.classifiers, features, strict=True)]
        )  # [M, B, C]
        logits = (self.weights[:, None, None] * per_modality).sum(dim=0)  # [B, C]
        return (logits, per_modality) if return_per_modality else logits


class GatedFusionOutput(NamedTuple):
    logits: torch.Tensor  # [B, C]
    fused: torch.Tensor  # [B, fused_dim]
    gates: torch.Tensor  # [B, M], each row sums to 1


class GatedFusion(nn.Module):
    """Input-dependent weighting of modalities.

    Each modality is projected to ``fused_dim``; a gate network looks at all
    projected features together and outputs one score per modality; a softmax over
    modalities turns them into weights that sum to 1 for every example; the fused
    vector is the weighted sum. The gates are returned so they can be inspected.
    """

    def __init__(
        self,
        feature_dims: Sequence[int],
        num_classes: int,
        fused_dim: int = 256,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.feature_dims = _check_dims(feature_dims, num_classes)
        self.projections = nn.ModuleList(
            nn.Linear(d, fused_dim) for d in self.feature_dims
        )
        self.gate = nn.Linear(
            fused_dim * len(self.feature_dims), len(self.feature_dims)
        )
        self.norm = nn.LayerNorm(fused_dim)
        self.classifier = _classifier(fused_dim, num_classes, hidden_dim, dropout)

    def forward(self, *features: torch.Tensor) -> GatedFusionOutput:
        _check_features(features, self.feature_dims)
        projected = torch.stack(
            [torch.tanh(p(x)) for p, x in zip(self.projections, features, strict=True)],
            dim=1,
        )  # [B, M, F]
        gates = self.gate(projected.flatten(1)).softmax(dim=-1)  # [B, M]
        fused = self.norm((gates.unsqueeze(-1) * projected).sum(dim=1))  # [B, F]
        return GatedFusionOutput(self.classifier(fused), fused, gates)
