"""Frozen encoders for the ablation: pre-train once, compute their outputs once, reuse.

The original study started every version from pretrained encoders (ImageNet ResNet-18,
bert-base) and trained them end to end. Where none are available (the small offline
towers) or a study must be cheap, :func:`pretrained_encoders` trains the two encoders
once per seed as the chapter's dual encoder (:class:`~dldna.chapter_10.multimodal_embedding.MultimodalEmbedding`,
with the same :func:`~dldna.chapter_10.training.fit` as everything else) and caches
their weights. With ``freeze_encoders`` the ablation then computes the encoders'
outputs once (:func:`precompute_features`); each version trains only the projections
into the shared space, its cross-attention and the temperature, on a
:class:`FeatureSplit`. That is exact: :func:`attach_encoders` puts the frozen encoders
back under the trained parts, and the assembled model gives the same scores on raw
images and token ids.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import transformers
from torch import Tensor, nn

from dldna import checkpoint
from dldna.chapter_10.encoders import ImageTower, TextTower
from dldna.chapter_10.mm.model import ImageTextMatchingModel, build_model
from dldna.chapter_10.multimodal_embedding import MultimodalEmbedding
from dldna.chapter_10.training import TrainConfig, fit, steps_per_epoch, trim_padding
from dldna.data.cache import CachedSplit
from dldna.timing import ExpectedRunTime

logger = logging.getLogger(__name__)

__all__ = [
    "ENCODER_CACHE_FORMAT",
    "FeatureMapInput",
    "FeatureSplit",
    "HiddenStateInput",
    "attach_encoders",
    "precompute_features",
    "pretrain_encoders",
    "pretrained_encoders",
]

#: Format tag of the cached pre-trained encoder weights.
ENCODER_CACHE_FORMAT = "dldna.chapter_10.mm/pretrained-encoders-1"


class FeatureMapInput(nn.Module):
    """Stands in for a frozen image backbone whose feature maps were computed in advance.

    Its "images" are those feature maps ``[B, C, h, w]``; it returns them unchanged, so an
    :class:`~dldna.chapter_10.encoders.ImageTower` built on it trains its projection only.
    """

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels

    def forward(self, feature_maps: Tensor) -> Tensor:
        return feature_maps  # [B, C, h, w]


class HiddenStateInput(nn.Module):
    """Stands in for a frozen text encoder whose hidden states were computed in advance.

    A :class:`~dldna.chapter_10.encoders.TextTower` passes it ``input_ids``; here those are
    the cached states ``[B, L, H]``, returned as ``last_hidden_state``.
    """

    def __init__(self, config: transformers.PretrainedConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=input_ids)  # [B, L, H]


@dataclass
class FeatureSplit(CachedSplit):
    """A :class:`~dldna.data.cache.CachedSplit` of frozen-encoder outputs.

    ``images`` holds backbone feature maps ``[N_img, C, h, w]`` and ``input_ids`` the text
    encoder's hidden states ``[N_cap, L, H]``; batching and caption sampling are inherited.
    """

    def image_batch(self, rows: Tensor | Sequence[int], device: torch.device | str = "cpu") -> Tensor:
        return self.images[torch.as_tensor(rows, dtype=torch.long)].to(device)


@torch.no_grad()
def precompute_features(
    split: CachedSplit, backbone: nn.Module, text_encoder: nn.Module, *, batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> FeatureSplit:
    """Run the frozen encoders (eval mode) once over a split: every version then reuses the outputs."""
    backbone.eval().to(device)
    text_encoder.eval().to(device)
    rows = list(range(split.num_images))
    feature_maps = torch.cat(
        [backbone(split.image_batch(rows[i : i + batch_size], device)).cpu() for i in range(0, len(rows), batch_size)]
    )  # [N_img, C, h, w]
    input_ids, attention_mask = trim_padding(split.input_ids, split.attention_mask)
    hidden = torch.cat(
        [
            text_encoder(
                input_ids=input_ids[i : i + batch_size].to(device),
                attention_mask=attention_mask[i : i + batch_size].to(device),
            ).last_hidden_state.cpu()
            for i in range(0, len(input_ids), batch_size)
        ]
    )  # [N_cap, L, H]
    return FeatureSplit(
        images=feature_maps, image_names=list(split.image_names), captions=list(split.captions),
        input_ids=hidden, attention_mask=attention_mask, image_index=split.image_index,
    )  # fmt: skip


def attach_encoders(
    trained: ImageTextMatchingModel, backbone: nn.Module, text_encoder: nn.Module
) -> ImageTextMatchingModel:
    """Put the frozen encoders back under a model trained on their cached outputs.

    The result takes raw images and token ids (what a checkpoint and the zero-shot check
    need); every trained weight is copied and the whole state is loaded strictly.
    """
    if trained.config is None:
        raise ValueError("The trained model has no config; build it with build_model.")
    full = build_model(trained.config, backbone=copy.deepcopy(backbone), text_encoder=copy.deepcopy(text_encoder))
    state = full.state_dict()
    learned = trained.state_dict()
    unknown = sorted(set(learned) - set(state))
    if unknown:
        raise RuntimeError(f"Trained weights {unknown[:5]} have no place in the full model.")
    state.update(learned)
    full.load_state_dict(state, strict=True)
    return full.to(next(trained.parameters()).device)


def pretrain_encoders(
    backbone: nn.Module,
    text_encoder: nn.Module,
    train_split: CachedSplit,
    val_split: CachedSplit,
    config: TrainConfig,
    dim: int,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Train ``backbone`` and ``text_encoder`` in place as the chapter's dual encoder.

    Returns the last history row (validation loss and Recall@K of the dual encoder).
    """
    dual = MultimodalEmbedding(ImageTower(backbone, dim), TextTower(text_encoder, dim))
    steps = steps_per_epoch(train_split, config.batch_size) * config.num_epochs
    expected = ExpectedRunTime(steps, "encoder pre-training", device)
    history = fit(dual, train_split, val_split, config, device, expected_time=expected)
    return history.iloc[-1].to_dict()


def pretrained_encoders(
    backbone: nn.Module,
    text_encoder: nn.Module,
    train_split: CachedSplit,
    val_split: CachedSplit,
    config: TrainConfig,
    dim: int,
    cache_dir: Path,
    key_fields: dict[str, Any],
    device: torch.device | str | None = None,
) -> Path:
    """Pre-train the encoders in place, or load the weights an earlier run cached for ``key_fields``.

    The cache is derived data: a file that cannot be read or does not fit is named in a
    warning, deleted and rebuilt.
    """
    settings = {**key_fields, "train": checkpoint.plain(config), "dim": dim}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = cache_dir / f"seed{config.seed}-{key}.pth"
    if path.is_file():
        try:
            payload = checkpoint.read(path, ENCODER_CACHE_FORMAT, required=("text_encoder",))
            backbone.load_state_dict(payload["state_dict"], strict=True)
            text_encoder.load_state_dict(payload["text_encoder"], strict=True)
            logger.info("Loaded pre-trained encoders from %s", path)
            return path
        except (checkpoint.CheckpointError, RuntimeError) as exc:
            logger.warning("The encoder cache %s is damaged (%s); pre-training the encoders again.", path, exc)
            path.unlink()
    last = pretrain_encoders(backbone, text_encoder, train_split, val_split, config, dim, device)
    logger.info(
        "Pre-trained the encoders for %d epochs: val loss %.3f, mean recall %.3f",
        config.num_epochs, last["val_loss"], last["mean_recall"],
    )  # fmt: skip
    text_state = {k: v.detach().cpu() for k, v in text_encoder.state_dict().items()}
    checkpoint.save(path, ENCODER_CACHE_FORMAT, backbone, settings=settings, text_encoder=text_state)
    return path
