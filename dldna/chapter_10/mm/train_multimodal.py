"""Train one image-text matching model per cross-attention version (section 10.6).

The original chapter trained, for each of the 17 versions of
:mod:`dldna.chapter_10.mm.cross_attention`, a matching model made of an image tower, a
text tower and the version's cross-attention, and compared them. This module does the
same in two modes (see :data:`MODES`):

``faithful``
    The original protocol. Each tower's pooled vector enters the cross-attention as a
    sequence of length 1, so every softmax is exactly 1 and "attention" copies the other
    modality's vector (erratum 3). As in the original, the fused vectors of pair ``i`` are
    computed from image ``i`` *and caption ``i``*, and the batch logits compare fused image
    vector ``i`` with fused text vector ``j``: the diagonal pairs share their inputs.
``tokens``
    The corrected study. Image patch tokens (plus a global token) attend to word tokens
    (with padding masks) and back. Every image of a batch is fused with every caption
    (``B * B`` pairs), and the score of a pair is the cosine of its pooled fused vectors, so
    a caption can be ranked against all images of a held-out split.

Both modes are evaluated the same way, by Recall@1/5/10 on held-out images
(:func:`evaluate_retrieval`): a pair's score is computed from that pair alone, exactly as
the original evaluator scored one photo against one caption at a time. (The original's
in-batch accuracy is kept as ``val_batch_acc``; in faithful mode it is computed from the
leaky logits and can be perfect while retrieval is at chance.)

:func:`run_training` trains a list of versions on one saved image-level split (erratum 2),
writes each finished version's result and checkpoint atomically, resumes an interrupted
run, and records a version whose loss becomes NaN/inf as ``diverged`` instead of crashing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer
from torch import Tensor
from tqdm.auto import tqdm

from dldna.chapter_10.encoders import ConvNetConfig, ImageTower, ResNetTrunk, SmallConvNet, TextTower, TowerOutput
from dldna.chapter_10.losses import contrastive_loss
from dldna.chapter_10.metrics import recall_at_k_from_scores
from dldna.chapter_10.mm.cross_attention import REGISTRY, VERSIONS, UnknownVersionError, get_cross_attention
from dldna.data.cache import CachedSplit, cached_split
from dldna.data.flickr8k import Flickr8kDataset, load_or_create_split, read_captions
from dldna.loaders import build_wordpiece_tokenizer
from dldna.runtime import Runtime, seed_everything, setup

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "KS",
    "MODES",
    "CheckpointError",
    "DualEncoder",
    "FeatureMapInput",
    "FeatureSplit",
    "HiddenStateInput",
    "ImageTextMatchingModel",
    "ModelConfig",
    "RunConfig",
    "Sequences",
    "TrainResult",
    "attach_encoders",
    "build_model",
    "chance_recall",
    "checkpoint_path",
    "contrastive_loss",
    "evaluate_retrieval",
    "get_cross_attention",
    "load_checkpoint",
    "precompute_features",
    "pretrain_encoders",
    "read_checkpoint",
    "result_path",
    "run_training",
    "save_checkpoint",
    "train",
    "validate",
]

#: Recall@K cut-offs reported everywhere.
KS: tuple[int, ...] = (1, 5, 10)
#: CLIP's initial temperature 0.07, stored as log(1 / 0.07).
LOGIT_SCALE_INIT = math.log(1 / 0.07)
#: Upper bound of the learned logit scale (CLIP clamps at 100 as well).
MAX_LOGIT_SCALE = 100.0
#: Written into every checkpoint; a file without it was not written by this module.
CHECKPOINT_FORMAT = "dldna.chapter_10.mm/itm-checkpoint-1"
#: Seed of the fixed caption choice and order used for validation batches.
VAL_ORDER_SEED = 12345


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked (wrong version, foreign or broken file)."""


# ------------------------------------------------------------------------ sequences


@dataclass
class Sequences:
    """What the cross-attention reads for one modality: tokens and their padding mask."""

    tokens: Tensor  # [N, T, D]
    mask: Tensor  # [N, T] bool, True = real token

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def take(self, rows: Tensor) -> Sequences:
        """The sequences of ``rows`` (repeats allowed): how pairs are formed."""
        return Sequences(self.tokens.index_select(0, rows), self.mask.index_select(0, rows))

    @staticmethod
    def cat(parts: Sequence[Sequences]) -> Sequences:
        return Sequences(torch.cat([p.tokens for p in parts]), torch.cat([p.mask for p in parts]))


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean over the real tokens: ``[N, T, D]`` and ``[N, T]`` -> ``[N, D]``."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # [N, T, 1]
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def pool_grid(tokens: Tensor, grid: int | None) -> Tensor:
    """Average-pool a square ``[B, h*w, D]`` token grid to ``[B, grid*grid, D]``.

    Fewer image tokens make the ``B * B`` pairwise cross-attention affordable on a CPU;
    each pooled token still covers one region of the picture.
    """
    if grid is None:
        return tokens
    batch, count, dim = tokens.shape
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"image_grid needs a square token grid, got {count} tokens; use image_grid=None.")
    if grid >= side:
        return tokens
    fmap = tokens.transpose(1, 2).reshape(batch, dim, side, side)  # [B, D, h, w]
    return F.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)  # [B, g*g, D]


def trim_padding(input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Cut the columns that are padding in every row (right padding): same outputs, less work."""
    length = max(1, int(attention_mask.sum(dim=1).max()))
    return input_ids[:, :length], attention_mask[:, :length]


# ----------------------------------------------------------------------------- modes


class _Mode:
    """How one mode turns tower outputs into sequences and a batch into ``[B, B]`` logits."""

    name: str = ""

    def image_sequences(self, out: TowerOutput, grid: int | None) -> Sequences:
        raise NotImplementedError

    def text_sequences(self, out: TowerOutput) -> Sequences:
        raise NotImplementedError

    def batch_logits(self, model: ImageTextMatchingModel, images: Sequences, texts: Sequences) -> Tensor:
        raise NotImplementedError


#: Mode name -> behaviour, filled by :func:`_register_mode`.
_MODE_REGISTRY: dict[str, _Mode] = {}


def _register_mode(cls: type[_Mode]) -> type[_Mode]:
    _MODE_REGISTRY[cls.name] = cls()
    return cls


@_register_mode
class _FaithfulMode(_Mode):
    """The original protocol: pooled vectors as length-1 sequences (erratum 3)."""

    name = "faithful"

    @staticmethod
    def _single(vector: Tensor) -> Sequences:
        mask = torch.ones(vector.shape[0], 1, dtype=torch.bool, device=vector.device)
        return Sequences(vector.unsqueeze(1), mask)  # [N, 1, D]

    def image_sequences(self, out: TowerOutput, grid: int | None) -> Sequences:
        return self._single(out.pooled)

    def text_sequences(self, out: TowerOutput) -> Sequences:
        return self._single(out.pooled)

    def batch_logits(self, model: ImageTextMatchingModel, images: Sequences, texts: Sequences) -> Tensor:
        """Fused image ``i`` vs fused text ``j``, each fused from its own pair ``(i, i)``.

        Both vectors of a diagonal entry were computed from the same image and caption, so
        the loss can fall without the towers aligning the two modalities.
        """
        rows = torch.arange(len(images), device=images.tokens.device)
        image_vec, text_vec = model.fuse(images, texts, rows, rows)  # [B, D] each
        return model.scale() * F.normalize(image_vec, dim=-1) @ F.normalize(text_vec, dim=-1).t()  # [B, B]


@_register_mode
class _TokenMode(_Mode):
    """The corrected study: patch tokens x word tokens, every image with every caption."""

    name = "tokens"

    def image_sequences(self, out: TowerOutput, grid: int | None) -> Sequences:
        patches = pool_grid(out.tokens, grid)  # [B, n, D]
        tokens = torch.cat([out.pooled.unsqueeze(1), patches], dim=1)  # [B, 1 + n, D], global token first
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return Sequences(tokens, mask)

    def text_sequences(self, out: TowerOutput) -> Sequences:
        tokens = torch.cat([out.pooled.unsqueeze(1), out.tokens[:, 1:]], dim=1)  # normalised [CLS], then words
        return Sequences(tokens, out.mask)

    def batch_logits(self, model: ImageTextMatchingModel, images: Sequences, texts: Sequences) -> Tensor:
        """Scores of all ``B * B`` (image, caption) pairs, each fused on its own."""
        b_img, b_txt = len(images), len(texts)
        device = images.tokens.device
        rows = torch.arange(b_img, device=device).repeat_interleave(b_txt)  # [B*B] 0,0,..,1,1,..
        cols = torch.arange(b_txt, device=device).repeat(b_img)  # [B*B] 0,1,..,0,1,..
        return model.pair_scores(images, texts, rows, cols).view(b_img, b_txt)


#: The two modes, in the order the study reports them.
MODES: tuple[str, ...] = tuple(_MODE_REGISTRY)


def _check_mode(mode: str) -> _Mode:
    if mode not in _MODE_REGISTRY:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    return _MODE_REGISTRY[mode]


def _check_versions(versions: Sequence[str]) -> list[str]:
    if isinstance(versions, str):
        versions = [versions]
    versions = list(versions)
    unknown = [v for v in versions if v not in REGISTRY]
    if unknown:
        raise UnknownVersionError(
            f"Unknown cross-attention version(s) {unknown}; known versions: {', '.join(VERSIONS)}."
        )
    if len(set(versions)) != len(versions):
        raise ValueError(f"model_versions lists a version twice: {versions}.")
    if not versions:
        raise ValueError("model_versions is empty; pass e.g. ['v0', 'v9'] or VERSIONS.")
    return versions


# ----------------------------------------------------------------------------- model


class ImageTextMatchingModel(nn.Module):
    """Image tower + text tower + one cross-attention version + a cosine pair score.

    Args:
        cross_attention: a ``CrossAttention`` of any version (``forward(image, text,
            image_mask, text_mask) -> (image_out, text_out)``).
        image_tower: :class:`~dldna.chapter_10.encoders.ImageTower` (tokens + pooled).
        text_tower: :class:`~dldna.chapter_10.encoders.TextTower` (tokens + mask + pooled).
        mode: ``"tokens"`` or ``"faithful"`` (see the module docstring).
        dim: the shared width; every part must produce it.
        image_grid: pool the image token grid to ``image_grid x image_grid`` tokens in
            ``tokens`` mode (``None`` keeps the backbone's grid).
        logit_scale_init: initial log of the learned logit scale (CLIP's ``log(1/0.07)``).

    The score of a pair is ``exp(logit_scale) * cos(mean(image_out), mean(text_out))``, the
    fused outputs averaged over their real tokens: one head for both modes.
    """

    def __init__(
        self,
        cross_attention: nn.Module,
        image_tower: ImageTower,
        text_tower: TextTower,
        mode: str = "tokens",
        dim: int | None = None,
        image_grid: int | None = None,
        logit_scale_init: float = LOGIT_SCALE_INIT,
    ) -> None:
        super().__init__()
        self._mode = _check_mode(mode)
        dim = int(dim if dim is not None else cross_attention.dim)
        widths = {
            "cross_attention.dim": getattr(cross_attention, "dim", None),
            "image_tower output": image_tower.proj.out_features,
            "text_tower output": text_tower.proj.out_features,
        }
        wrong = {name: width for name, width in widths.items() if width != dim}
        if wrong:
            raise ValueError(f"Every part must work at dim={dim}, but {wrong}; build them with the same dim.")
        if image_grid is not None and image_grid < 1:
            raise ValueError(f"image_grid must be a positive int or None, got {image_grid!r}.")
        self.cross_attention = cross_attention
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.mode = mode
        self.dim = dim
        self.image_grid = image_grid
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        #: The recipe this model was built from (set by :func:`build_model`); checkpoints need it.
        self.config: ModelConfig | None = None

    @property
    def version(self) -> str:
        return getattr(self.cross_attention, "version", "")

    def scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def encode_images(self, images: Tensor) -> Sequences:
        """``[B, 3, H, W]`` -> the image sequences this mode feeds the cross-attention."""
        return self._mode.image_sequences(self.image_tower(images), self.image_grid)

    def encode_texts(self, input_ids: Tensor, attention_mask: Tensor) -> Sequences:
        """Token ids ``[B, L]`` -> the text sequences this mode feeds the cross-attention."""
        input_ids, attention_mask = trim_padding(input_ids, attention_mask)
        return self._mode.text_sequences(self.text_tower(input_ids, attention_mask))

    def fuse(self, images: Sequences, texts: Sequences, image_rows: Tensor, text_rows: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-attend image ``image_rows[p]`` with caption ``text_rows[p]`` for every pair ``p``.

        Returns the fused image and text vectors ``[P, D]`` (outputs averaged over real tokens).
        """
        image, text = images.take(image_rows), texts.take(text_rows)
        image_out, text_out = self.cross_attention(image.tokens, text.tokens, image.mask, text.mask)
        return masked_mean(image_out, image.mask), masked_mean(text_out, text.mask)  # [P, D] each

    def pair_scores(self, images: Sequences, texts: Sequences, image_rows: Tensor, text_rows: Tensor) -> Tensor:
        """Score of each pair ``(image_rows[p], text_rows[p])`` from that pair alone: ``[P]``."""
        image_vec, text_vec = self.fuse(images, texts, image_rows, text_rows)
        return self.scale() * F.cosine_similarity(image_vec, text_vec, dim=-1)

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Training logits ``[B, B]`` (image ``i`` x caption ``j``, matches on the diagonal)."""
        return self._mode.batch_logits(self, self.encode_images(images), self.encode_texts(input_ids, attention_mask))

    @torch.no_grad()
    def score_matrix(
        self,
        images: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        *,
        batch_size: int = 64,
        pair_chunk: int = 2048,
    ) -> Tensor:
        """Scores ``[N_images, N_captions]`` of every image with every caption, pair by pair.

        The towers run once per image and once per caption; only the cross-attention runs
        per pair, in chunks of ``pair_chunk`` pairs. The model is put in eval mode for the
        call and restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            input_ids, attention_mask = trim_padding(input_ids, attention_mask)  # one length for all chunks
            image_seq = Sequences.cat(
                [self.encode_images(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
            )
            text_seq = Sequences.cat(
                [
                    self._mode.text_sequences(
                        self.text_tower(input_ids[i : i + batch_size], attention_mask[i : i + batch_size])
                    )
                    for i in range(0, len(input_ids), batch_size)
                ]
            )
            n_img, n_txt = len(image_seq), len(text_seq)
            device = image_seq.tokens.device
            scores = torch.empty(n_img * n_txt, device=device)
            for start in range(0, n_img * n_txt, pair_chunk):
                pairs = torch.arange(start, min(start + pair_chunk, n_img * n_txt), device=device)
                scores[pairs] = self.pair_scores(image_seq, text_seq, pairs // n_txt, pairs % n_txt).float()
            return scores.view(n_img, n_txt)
        finally:
            self.train(was_training)


# ------------------------------------------------------------- config and rebuilding


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model without network: stored in each checkpoint.

    ``backbone`` is ``{"name": "small_convnet", "channels": [...], "strides": [...]}`` or
    ``{"name": "resnet", "depth": 18}``; ``text_encoder`` is a ``BertConfig`` as a dict.
    """

    version: str
    mode: str = "tokens"
    dim: int = 64
    num_heads: int = 4
    dropout: float = 0.1
    image_grid: int | None = 4
    image_size: int = 64
    max_length: int = 32
    logit_scale_init: float = LOGIT_SCALE_INIT
    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "small_convnet"})
    text_encoder: dict[str, Any] = field(default_factory=dict)

    def attention_config(self) -> dict[str, Any]:
        """Constructor arguments for ``get_cross_attention``."""
        return {"dim": self.dim, "num_heads": self.num_heads, "dropout": self.dropout}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown or "version" not in data:
            raise CheckpointError(f"Model config has unknown keys {unknown} or no 'version': {sorted(data)}.")
        return cls(**data)


def backbone_recipe(backbone: nn.Module) -> dict[str, Any]:
    """Describe an image backbone so :func:`make_backbone` can rebuild its architecture."""
    if isinstance(backbone, SmallConvNet):
        convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
        channels, strides = [c.out_channels for c in convs], [c.stride[0] for c in convs]
        return {"name": "small_convnet", "channels": channels, "strides": strides}
    if isinstance(backbone, ResNetTrunk):
        depth = {512: 18, 2048: 50}.get(backbone.out_channels)
        if depth is not None:
            return {"name": "resnet", "depth": depth}
    raise TypeError(f"Cannot describe backbone {type(backbone).__name__}; use SmallConvNet or a ResNet-18/50 trunk.")


def make_backbone(recipe: dict[str, Any]) -> nn.Module:
    """Build (random weights) the backbone a :func:`backbone_recipe` describes."""
    import torchvision

    name = recipe.get("name")
    if name == "small_convnet":
        defaults = ConvNetConfig()
        channels = tuple(recipe.get("channels", defaults.channels))
        strides = tuple(recipe.get("strides", defaults.strides))
        return SmallConvNet(ConvNetConfig(channels=channels, strides=strides))
    if name == "resnet":
        return ResNetTrunk(getattr(torchvision.models, f"resnet{int(recipe['depth'])}")(weights=None))
    raise CheckpointError(f"Unknown backbone recipe {recipe!r}; expected name 'small_convnet' or 'resnet'.")


def make_text_encoder(config: dict[str, Any]) -> transformers.BertModel:
    """A ``BertModel`` without its pooler (the towers read token states only)."""
    if not config:
        raise CheckpointError("The model config has no text_encoder (a BertConfig dict).")
    return transformers.BertModel(transformers.BertConfig.from_dict(dict(config)), add_pooling_layer=False)


def build_model(
    config: ModelConfig,
    *,
    backbone: nn.Module | None = None,
    text_encoder: nn.Module | None = None,
) -> ImageTextMatchingModel:
    """Build the model ``config`` describes; pass ``backbone``/``text_encoder`` to reuse modules.

    Without them, the architectures are built from the config with random weights (the
    weights then come from a checkpoint). The order of construction is fixed, so a given
    torch seed gives the same initial weights for the parts all versions share.
    """
    _check_mode(config.mode)
    if config.version not in REGISTRY:
        raise UnknownVersionError(
            f"Unknown cross-attention version {config.version!r}; known versions: {', '.join(VERSIONS)}."
        )
    backbone = backbone if backbone is not None else make_backbone(config.backbone)
    text_encoder = text_encoder if text_encoder is not None else make_text_encoder(config.text_encoder)
    image_tower = ImageTower(backbone, config.dim)
    text_tower = TextTower(text_encoder, config.dim)
    cross_attention = get_cross_attention(config.version, config.attention_config())
    model = ImageTextMatchingModel(
        cross_attention, image_tower, text_tower, mode=config.mode, dim=config.dim,
        image_grid=config.image_grid, logit_scale_init=config.logit_scale_init,
    )  # fmt: skip
    model.config = config
    return model


# ----------------------------------------------------------------------- checkpoints


def _tokenizer_record(tokenizer: Any) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"Need a fast (tokenizers-backed) tokenizer to save, got {type(tokenizer).__name__}.")
    return {"json": backend.to_str(), "special_tokens": dict(tokenizer.special_tokens_map)}


def _tokenizer_from_record(record: dict[str, Any]) -> transformers.PreTrainedTokenizerBase:
    return transformers.BertTokenizerFast(
        tokenizer_object=Tokenizer.from_str(record["json"]), **record.get("special_tokens", {})
    )



def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(model: ImageTextMatchingModel, path: str | os.PathLike[str], tokenizer: Any) -> Path:
    """Save ``{"state_dict", "version", "mode", "config", "tokenizer", "format"}`` atomically.

    The checkpoint names its own version and holds the full build recipe and the
    tokenizer, so :func:`load_checkpoint` needs nothing else (erratum 6: the original
    guessed the version from the file name).
    """
    if model.config is None:
        raise ValueError("model.config is not set; build the model with build_model(...) so it can be saved.")
    if model.config.version != model.version or model.config.mode != model.mode:
        raise ValueError(
            f"model.config says {model.config.version}/{model.config.mode}, "
            f"the model is {model.version}/{model.mode}."
        )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": model.version,
        "mode": model.mode,
        "config": asdict(model.config),
        "tokenizer": _tokenizer_record(tokenizer),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` and check that it is one of our checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign pickle, a truncated file...
        raise CheckpointError(f"Cannot read {path} as a weights-only checkpoint: {exc}") from exc
    required = ("format", "version", "mode", "config", "tokenizer", "state_dict")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a checkpoint written by save_checkpoint (format {CHECKPOINT_FORMAT!r}); "
            f"it holds {keys}. Retrain with run_training to get one."
        )
    missing = [k for k in required if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}.")
    config = payload["config"]
    if config.get("version") != payload["version"] or config.get("mode") != payload["mode"]:
        raise CheckpointError(
            f"{path} is inconsistent: it says version {payload['version']!r} / mode {payload['mode']!r} "
            f"but its config says {config.get('version')!r} / {config.get('mode')!r}."
        )
    return payload


def load_checkpoint(
    path: str | os.PathLike[str],
    expected_version: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[ImageTextMatchingModel, transformers.PreTrainedTokenizerBase, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights with ``strict=True``.

    The version comes from the checkpoint. With ``expected_version`` a checkpoint of any
    other version is rejected. Returns ``(model in eval mode, tokenizer, raw checkpoint)``.
    """
    payload = read_checkpoint(path)
    version = payload["version"]
    if expected_version is not None and version != expected_version:
        raise CheckpointError(
            f"{path} holds a model of version {version!r}, not the requested {expected_version!r}. "
            "The version is read from the checkpoint, never from the file name."
        )
    model = build_model(ModelConfig.from_dict(dict(payload["config"])))
    model.load_state_dict(payload["state_dict"], strict=True)
    tokenizer = _tokenizer_from_record(payload["tokenizer"])
    return model.to(device).eval(), tokenizer, payload



# ---------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """Per-epoch losses of one training run and how it ended."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_batch_acc: list[float] = field(default_factory=list)
    status: str = "ok"  # "ok" or "diverged"
    stopped: str | None = None  # where a diverged run stopped
    seconds: float = 0.0


def _usable_batches(split: CachedSplit, batch_size: int, device: torch.device, generator: torch.Generator) -> Iterator:
    """One epoch of batches, one caption per image; a final batch of one pair is dropped
    (its contrastive loss is 0 and says nothing)."""
    for batch in split.batches(batch_size, device=device, generator=generator, shuffle=True):
        if batch[0].shape[0] >= 2:
            yield batch


@torch.no_grad()
def validate(
    model: ImageTextMatchingModel, split: CachedSplit, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """Mean contrastive loss and in-batch accuracy on ``split`` (fixed caption choice and order).

    The accuracy is the original's metric (is the matching caption the batch's best?). In
    faithful mode it is computed from the leaky training logits, so it overstates retrieval.
    """
    model.eval()
    generator = torch.Generator().manual_seed(VAL_ORDER_SEED)
    total_loss, total_hits, count = 0.0, 0.0, 0
    for images, input_ids, attention_mask in _usable_batches(split, batch_size, device, generator):
        logits = model(images, input_ids, attention_mask)  # [B, B]
        b = logits.shape[0]
        total_loss += float(contrastive_loss(logits)) * b
        total_hits += float((logits.argmax(dim=1) == torch.arange(b, device=logits.device)).sum())
        count += b
    if count == 0:
        raise ValueError("The validation split has fewer than 2 images; give it more data.")
    return total_loss / count, total_hits / count


def train(
    model: ImageTextMatchingModel,
    train_split: CachedSplit,
    val_split: CachedSplit | None,
    epochs: int,
    lr: float,
    *,
    batch_size: int = 32,
    weight_decay: float = 0.01,
    grad_clip: float | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> TrainResult:
    """Train with AdamW on the symmetric contrastive loss; validate after every epoch.

    Each epoch visits every training image once, with one of its captions drawn at random
    (a generator seeded with ``seed``), so no batch holds two captions of one image. A
    non-finite training or validation loss stops the run and returns ``status="diverged"``.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    result = TrainResult()
    start = time.perf_counter()
    steps_per_epoch = math.ceil(train_split.num_images / batch_size)
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc or model.version, leave=False, disable=not progress)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            total, count = 0.0, 0
            for step, (images, input_ids, attention_mask) in enumerate(
                _usable_batches(train_split, batch_size, device, generator), start=1
            ):
                loss = contrastive_loss(model(images, input_ids, attention_mask))
                if not torch.isfinite(loss):
                    result.status = "diverged"
                    result.stopped = f"epoch {epoch}, step {step}: training loss {loss.item()}"
                    logger.warning("%s diverged at %s", model.version, result.stopped)
                    return result
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                value = loss.item()
                total += value * images.shape[0]
                count += images.shape[0]
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{value:.3f}")
            result.train_loss.append(total / max(count, 1))
            if val_split is not None:
                val_loss, val_acc = validate(model, val_split, batch_size, device)
                if not math.isfinite(val_loss):
                    result.status, result.stopped = "diverged", f"epoch {epoch}: validation loss {val_loss}"
                    logger.warning("%s diverged at %s", model.version, result.stopped)
                    return result
                result.val_loss.append(val_loss)
                result.val_batch_acc.append(val_acc)
            logger.debug("%s epoch %d: train %.4f", model.version, epoch, result.train_loss[-1])
        return result
    finally:
        result.seconds = time.perf_counter() - start
        bar.close()


# -------------------------------------------------------------------------- evaluation


def chance_recall(n_images: int, captions_per_image: int, k: int) -> float:
    """Expected Recall@K (mean of both directions) of a model that ranks at random."""
    k_t2i = min(k, n_images) / n_images
    n_texts = n_images * captions_per_image
    wrong = n_texts - captions_per_image
    miss = math.comb(wrong, k) / math.comb(n_texts, k) if k <= wrong else 0.0
    return (k_t2i + (1.0 - miss)) / 2


def eval_subset(split: CachedSplit, n_images: int | None, captions_per_image: int | None) -> tuple[Tensor, Tensor]:
    """Image rows and caption indices of the first ``n_images`` images, ``captions_per_image`` each."""
    n = split.num_images if n_images is None else min(n_images, split.num_images)
    by_image: dict[int, list[int]] = {}
    for caption, row in enumerate(split.image_index.tolist()):
        if row < n and (captions_per_image is None or len(by_image.get(row, [])) < captions_per_image):
            by_image.setdefault(row, []).append(caption)
    rows = torch.tensor(sorted(by_image), dtype=torch.long)
    captions = torch.tensor([c for r in rows.tolist() for c in by_image[r]], dtype=torch.long)
    return rows, captions


@torch.no_grad()
def evaluate_retrieval(
    model: ImageTextMatchingModel,
    split: CachedSplit,
    *,
    n_images: int | None = 100,
    captions_per_image: int | None = 1,
    device: torch.device | str = "cpu",
    ks: Sequence[int] = KS,
) -> dict[str, float]:
    """Recall@K on held-out images; a pair's score comes from that pair alone.

    Returns ``i2t_R@K``, ``t2i_R@K``, ``R@K`` (mean of both directions), ``mean_recall``,
    and the evaluation size. The same scoring serves both modes.
    """
    rows, captions = eval_subset(split, n_images, captions_per_image)
    images = split.image_batch(rows.numpy(), device)
    scores = model.score_matrix(images, split.input_ids[captions].to(device), split.attention_mask[captions].to(device))
    position = {r: i for i, r in enumerate(rows.tolist())}
    text_to_image = torch.tensor([position[int(split.image_index[c])] for c in captions])
    metrics = recall_at_k_from_scores(scores.cpu(), text_to_image, ks)
    for k in ks:
        metrics[f"R@{k}"] = (metrics[f"i2t_R@{k}"] + metrics[f"t2i_R@{k}"]) / 2
    metrics["eval_images"] = len(rows)
    metrics["eval_captions"] = len(captions)
    return metrics


# ----------------------------------------------------- frozen (pre-trained) encoders


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
    rows = range(split.num_images)
    feature_maps = torch.cat(
        [
            backbone(split.image_batch(list(rows[i : i + batch_size]), device)).cpu()
            for i in range(0, len(rows), batch_size)
        ]
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
    return full


class DualEncoder(nn.Module):
    """CLIP-style dual encoder on the towers' pooled vectors: pre-trains encoders to freeze.

    The original study started from pretrained encoders (ImageNet ResNet-18, bert-base).
    Offline there are none, so :func:`pretrain_encoders` trains the smoke towers this way
    once, and the ablation then freezes them (see ``freeze_encoders`` of :func:`run_training`).
    """

    version = "dual-encoder"

    def __init__(self, image_tower: ImageTower, text_tower: TextTower) -> None:
        super().__init__()
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        image = F.normalize(self.image_tower(images).pooled, dim=-1)  # [B, D]
        text = F.normalize(self.text_tower(*trim_padding(input_ids, attention_mask)).pooled, dim=-1)  # [B, D]
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * image @ text.t()  # [B, B]


def pretrain_encoders(
    backbone: nn.Module,
    text_encoder: nn.Module,
    train_split: CachedSplit,
    val_split: CachedSplit | None,
    *,
    epochs: int,
    lr: float,
    dim: int,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> TrainResult:
    """Train ``backbone`` and ``text_encoder`` in place as a dual encoder (contrastive loss)."""
    seed_everything(seed)
    model = DualEncoder(ImageTower(backbone, dim), TextTower(text_encoder, dim))
    return train(model, train_split, val_split, epochs, lr, batch_size=batch_size, seed=seed, device=device)


# --------------------------------------------------------------------- the ablation run



@dataclass
class RunConfig:
    """The settings shared by every version of one :func:`run_training` call."""

    mode: str = "tokens"
    seed: int = 0
    split_seed: int = 0
    epochs: int = 5
    lr: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    grad_clip: float | None = None
    dim: int = 64
    num_heads: int = 4
    dropout: float = 0.1
    image_size: int = 64
    image_grid: int | None = 4
    max_length: int = 32
    max_images: int | None = None
    eval_images: int | None = 100
    eval_captions_per_image: int | None = 1
    freeze_encoders: bool = False
    pretrain_epochs: int = 0
    pretrain_lr: float = 1e-3
    profile: str = "smoke"

    def fingerprint(self, data_key: str) -> str:
        """A short hash of these settings and the data: results are reused only when it matches."""
        text = json.dumps({"run": asdict(self), "data": data_key}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def result_path(output_dir: str | os.PathLike[str], mode: str, seed: int, version: str) -> Path:
    """Where one version's result row lives: ``output_dir/<mode>/seed<seed>/result_<version>.json``."""
    return Path(output_dir) / mode / f"seed{seed}" / f"result_{version}.json"


def checkpoint_path(output_dir: str | os.PathLike[str], mode: str, seed: int, version: str) -> Path:
    """Where one version's final weights live: ``.../<mode>/seed<seed>/model_final_<version>.pth``."""
    return Path(output_dir) / mode / f"seed{seed}" / f"model_final_{version}.pth"


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=1, allow_nan=False), encoding="utf-8"))


def _finished(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved result at ``path`` if it belongs to this exact run configuration."""
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("Unreadable result %s; training that version again.", path)
        return None
    if row.get("fingerprint") != fingerprint:
        logger.warning("%s was produced with other settings or data; training that version again.", path)
        return None
    if row.get("status") == "ok" and not (path.parent / row.get("checkpoint", "")).is_file():
        logger.warning("%s has no checkpoint next to it; training that version again.", path)
        return None
    return row


@dataclass
class _Plan:
    """What a run will use, found cheaply: the split, the tokenizer and a key for both."""

    train_names: list[str]
    val_names: list[str]
    test_names: list[str]
    tokenizer: Any
    text_encoder: nn.Module | None  # already loaded (full profile) or built later
    data_key: str


@dataclass
class _Prepared:
    """Data and shared starting weights of one run, built once for all versions."""

    train: CachedSplit
    val: CachedSplit
    test: CachedSplit
    tokenizer: Any
    backbone: nn.Module
    text_encoder: nn.Module
    data_key: str


def _pretrained_encoders(
    config: RunConfig, data_key: str, backbone: nn.Module, text_encoder: nn.Module,
    train_split: CachedSplit, val_split: CachedSplit, output_dir: Path, device: torch.device,
) -> None:
    """Pre-train the encoders in place, or load the weights an earlier run saved for these settings."""
    settings = {
        "seed": config.seed, "epochs": config.pretrain_epochs, "lr": config.pretrain_lr, "dim": config.dim,
        "batch_size": config.batch_size, "image_size": config.image_size, "max_length": config.max_length,
        "profile": config.profile, "data": data_key,
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = output_dir / "encoders" / f"seed{config.seed}-{key}.pth"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        backbone.load_state_dict(saved["backbone"], strict=True)
        text_encoder.load_state_dict(saved["text_encoder"], strict=True)
        logger.info("Loaded pre-trained encoders from %s", path)
        return
    outcome = pretrain_encoders(
        backbone, text_encoder, train_split, val_split, epochs=config.pretrain_epochs, lr=config.pretrain_lr,
        dim=config.dim, batch_size=config.batch_size, seed=config.seed, device=device,
    )  # fmt: skip
    if outcome.status != "ok":
        raise RuntimeError(f"Pre-training the encoders diverged ({outcome.stopped}); lower pretrain_lr.")
    logger.info(
        "Pre-trained the encoders for %d epochs in %.0f s: val loss %.3f, in-batch accuracy %.2f",
        config.pretrain_epochs, outcome.seconds, outcome.val_loss[-1], outcome.val_batch_acc[-1],
    )  # fmt: skip
    payload = {"settings": settings, "backbone": backbone.state_dict(), "text_encoder": text_encoder.state_dict()}
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _plan(runtime: Runtime, config: RunConfig, caption_file: Path) -> _Plan:
    from dldna.loaders import CHAPTER_TEXTS, load_bert

    root = caption_file.parent
    rows = read_captions(caption_file)
    names = list(dict.fromkeys(name for name, _ in rows))
    split = load_or_create_split(root, names, seed=config.split_seed)  # one saved split for every version
    train_names = split["train"][: config.max_images] if config.max_images else split["train"]
    val_names = split["val"][: config.eval_images] if config.eval_images else split["val"]
    test_names = split["test"]
    if len(train_names) < 2 or len(val_names) < 2 or len(test_names) < 2:
        raise ValueError(
            f"Need at least 2 images in each split, got train {len(train_names)}, val {len(val_names)}, "
            f"test {len(test_names)} from {caption_file}; use more images."
        )
    text_encoder = None
    if runtime.synthetic:
        # The vocabulary comes from the training captions (plus the chapter's sentences, so
        # the zero-shot captions are not all [UNK]); the full profile uses bert-base's.
        train_set = set(train_names)
        tokenizer = build_wordpiece_tokenizer([*(c for n, c in rows if n in train_set), *CHAPTER_TEXTS])
    else:
        text_encoder, tokenizer = load_bert(runtime)
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    digest = hashlib.sha256(
        json.dumps([train_names, val_names, test_names, str(root.resolve()), vocabulary]).encode()
    ).hexdigest()  # results and pre-trained encoders are reused only for this exact data and vocabulary
    return _Plan(train_names, val_names, test_names, tokenizer, text_encoder, digest[:16])


def _prepare(
    plan: _Plan, runtime: Runtime, config: RunConfig, image_dir: Path, caption_file: Path, output_dir: Path
) -> _Prepared:
    """Build the shared encoders (same seed: same weights) and the cached splits."""
    from dldna.loaders import load_hub_model, load_image_backbone

    text_encoder, tokenizer = plan.text_encoder, plan.tokenizer
    if text_encoder is None:
        text_encoder, tokenizer = load_hub_model("bert", runtime, tokenizer=tokenizer)
    text_encoder.pooler = None  # the towers read token states only; an unused pooler gets no gradient
    backbone = load_image_backbone(runtime)

    def split_of(subset: list[str]) -> CachedSplit:
        dataset = Flickr8kDataset(
            image_dir, caption_file, tokenizer=tokenizer, max_length=config.max_length, images=subset
        )
        return cached_split(dataset, config.image_size)

    splits = [split_of(plan.train_names), split_of(plan.val_names), split_of(plan.test_names)]
    if config.pretrain_epochs > 0:
        _pretrained_encoders(
            config, plan.data_key, backbone, text_encoder, splits[0], splits[1], output_dir, runtime.device
        )
    if config.freeze_encoders:
        splits = [precompute_features(s, backbone, text_encoder, device=runtime.device) for s in splits]
    return _Prepared(
        train=splits[0], val=splits[1], test=splits[2], tokenizer=tokenizer,
        backbone=backbone, text_encoder=text_encoder, data_key=plan.data_key,
    )  # fmt: skip


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _train_one(
    version: str, config: RunConfig, data: _Prepared, runtime: Runtime, output_dir: Path, progress: bool
) -> dict[str, Any]:
    """Train, evaluate and save one version; return its result row."""
    seed_everything(config.seed)  # same start for every version, resumed or not
    model_config = ModelConfig(
        version=version, mode=config.mode, dim=config.dim, num_heads=config.num_heads, dropout=config.dropout,
        image_grid=config.image_grid, image_size=config.image_size, max_length=config.max_length,
        backbone=backbone_recipe(data.backbone), text_encoder=data.text_encoder.config.to_dict(),
    )  # fmt: skip
    if config.freeze_encoders:  # train on the cached encoder outputs
        backbone, text_encoder = FeatureMapInput(data.backbone.out_channels), HiddenStateInput(data.text_encoder.config)
    else:
        backbone, text_encoder = copy.deepcopy(data.backbone), copy.deepcopy(data.text_encoder)
    model = build_model(model_config, backbone=backbone, text_encoder=text_encoder).to(runtime.device)
    outcome = train(
        model, data.train, data.val, config.epochs, config.lr, batch_size=config.batch_size,
        weight_decay=config.weight_decay, grad_clip=config.grad_clip, seed=config.seed,
        device=runtime.device, progress=progress, desc=f"{version} ({config.mode}, seed {config.seed})",
    )  # fmt: skip
    row: dict[str, Any] = {
        "version": version, "mode": config.mode, "seed": config.seed,
        "params": _count(model.cross_attention), "trained_params": _count(model),
        "train_loss": outcome.train_loss, "val_loss": outcome.val_loss, "val_batch_acc": outcome.val_batch_acc,
        "status": outcome.status, "stopped": outcome.stopped,
        "sec_per_epoch": outcome.seconds / max(len(outcome.train_loss), 1),
    }  # fmt: skip
    metric_names = [f"{d}_R@{k}" for d in ("i2t", "t2i") for k in KS] + [f"R@{k}" for k in KS] + ["mean_recall"]
    row.update({name: None for name in metric_names})
    start = time.perf_counter()
    if outcome.status == "ok":
        metrics = evaluate_retrieval(
            model, data.test, n_images=config.eval_images, captions_per_image=config.eval_captions_per_image,
            device=runtime.device,
        )  # fmt: skip
        row.update(metrics)
        if config.freeze_encoders:
            model = attach_encoders(model, data.backbone, data.text_encoder)
        ckpt = checkpoint_path(output_dir, config.mode, config.seed, version)
        save_checkpoint(model, ckpt, data.tokenizer)
        row["checkpoint"] = ckpt.name
    row["eval_sec"] = time.perf_counter() - start
    return row


def run_training(
    model_versions: Sequence[str],
    epochs: int,
    lr: float,
    image_dir: str | os.PathLike[str],
    caption_file: str | os.PathLike[str],
    *,
    mode: str = "tokens",
    seed: int = 0,
    split_seed: int = 0,
    dim: int = 64,
    num_heads: int = 4,
    dropout: float = 0.1,
    batch_size: int = 32,
    weight_decay: float = 0.01,
    grad_clip: float | None = None,
    image_size: int = 64,
    image_grid: int | None = 4,
    max_length: int = 32,
    max_images: int | None = None,
    eval_images: int | None = 100,
    eval_captions_per_image: int | None = 1,
    freeze_encoders: bool = False,
    pretrain_epochs: int = 0,
    pretrain_lr: float = 1e-3,
    output_dir: str | os.PathLike[str] = "runs/ablation",
    resume: bool = True,
    profile: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train and evaluate every version of ``model_versions`` under identical conditions.

    All versions read the same saved image-level split of ``caption_file``'s images
    (``split_seed``), start from the same tower weights (``seed``), see the same batches
    and are scored by Recall@K on the same held-out test images. Each finished version
    writes ``output_dir/<mode>/seed<seed>/result_<version>.json`` (its row) and, when it
    trained, ``model_final_<version>.pth`` (checkpoint with version and config). With
    ``resume=True`` versions whose result exists for these exact settings, data and
    vocabulary are read back, not retrained. A NaN/inf loss stops that version only
    (``status="diverged"``, no checkpoint).

    Encoders: by default the image backbone and BERT train end to end with each version.
    ``pretrain_epochs > 0`` first trains them once as a dual encoder (cached under
    ``output_dir/encoders``, shared by every version and mode of this seed);
    ``freeze_encoders=True`` then freezes them and computes their outputs once, so each
    version trains only the projections into the shared space, its cross-attention and
    the temperature. That is exact (the assembled model gives the same scores on raw
    inputs) and an order of magnitude cheaper; the checkpoint holds the whole model.

    Returns one row per version with ``version, mode, seed, params`` (cross-attention
    parameters; ``trained_params`` for everything trained), ``train_loss`` and
    ``val_loss`` (lists, one value per epoch), ``val_batch_acc`` (the original's in-batch
    accuracy), ``R@1, R@5, R@10`` (the mean of image->text and text->image; both
    directions are in ``i2t_R@K`` and ``t2i_R@K``; ``eval_images`` held-out images with
    ``eval_captions_per_image`` captions each), ``sec_per_epoch``, ``eval_sec``,
    ``status`` (``"ok"`` or ``"diverged"``) and ``stopped`` (where a diverged run stopped).
    """
    versions = _check_versions(model_versions)
    _check_mode(mode)
    runtime = setup(profile, device=device, seed=seed)
    config = RunConfig(
        mode=mode, seed=seed, split_seed=split_seed, epochs=int(epochs), lr=float(lr), batch_size=batch_size,
        weight_decay=weight_decay, grad_clip=grad_clip, dim=dim, num_heads=num_heads, dropout=dropout,
        image_size=image_size, image_grid=image_grid, max_length=max_length, max_images=max_images,
        eval_images=eval_images, eval_captions_per_image=eval_captions_per_image,
        freeze_encoders=freeze_encoders, pretrain_epochs=pretrain_epochs, pretrain_lr=pretrain_lr,
        profile=runtime.profile,
    )  # fmt: skip
    if config.epochs < 1 or config.lr <= 0 or batch_size < 2:
        raise ValueError(f"Need epochs >= 1, lr > 0 and batch_size >= 2; got {epochs}, {lr}, {batch_size}.")
    image_dir, caption_file = Path(image_dir), Path(caption_file)
    plan = _plan(runtime, config, caption_file)
    fingerprint = config.fingerprint(plan.data_key)
    run_dir = Path(output_dir) / mode / f"seed{seed}"
    finished = {v: _finished(result_path(output_dir, mode, seed, v), fingerprint) if resume else None for v in versions}
    pending = [v for v in versions if finished[v] is None]
    logger.info(
        "%s mode, seed %d: %d train / %d val / %d test images; %d of %d versions to train; results in %s",
        mode, seed, len(plan.train_names), len(plan.val_names), len(plan.test_names), len(pending), len(versions),
        run_dir,
    )  # fmt: skip
    data = _prepare(plan, runtime, config, image_dir, caption_file, Path(output_dir)) if pending else None

    rows: list[dict[str, Any]] = []
    bar = tqdm(versions, desc=f"{mode} seed {seed}", unit="version", disable=not progress)
    for version in bar:
        if finished[version] is not None:
            logger.info("%s: reusing %s", version, result_path(output_dir, mode, seed, version))
            rows.append(finished[version])
            continue
        bar.set_postfix(version=version)
        row = _train_one(version, config, data, runtime, Path(output_dir), progress)
        row.update(fingerprint=fingerprint, run_config=asdict(config))
        _write_json_atomic(result_path(output_dir, mode, seed, version), row)  # last: its presence means done
        logger.info(
            "%s (%s, seed %d): %s, R@1 %s, %.1f s/epoch", version, mode, seed, row["status"],
            "n/a" if row["R@1"] is None else f"{row['R@1']:.3f}", row["sec_per_epoch"],
        )  # fmt: skip
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.drop(columns=[c for c in ("fingerprint", "run_config") if c in frame.columns])
