"""The ablation's image-text matching model, its two modes, its config and checkpoints.

:class:`ImageTextMatchingModel` puts one cross-attention version of
:mod:`dldna.chapter_10.mm.cross_attention` between an image tower and a text tower. It
is a :class:`~dldna.chapter_10.training.RetrievalModel`, so the chapter's one training
loop (:func:`~dldna.chapter_10.training.fit`) trains it like the dual encoder of 10.4.

Two modes (:data:`MODES`) say what the cross-attention reads and how a batch is scored:

``faithful``
    The original protocol. Each tower's pooled vector enters the cross-attention as a
    sequence of length 1, so every softmax is exactly 1 and "attention" copies the other
    modality's vector (erratum 3). As in the original, the *training* logits compare the
    fused image vector of pair ``i`` with the fused text vector of pair ``j``, each fused
    from its own pair, so the diagonal shares its inputs and the loss can fall without the
    towers aligning the modalities.
``tokens``
    The corrected study. Image patch tokens (plus a global token) attend to word tokens
    (with padding masks) and back; every image of a batch is fused with every caption.

In both modes :meth:`ImageTextMatchingModel.score` rates a pair from that pair alone
(the cosine of its pooled fused vectors), exactly as the original evaluator scored one
photo against one caption: that is what Recall@K on held-out images measures.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
import transformers
from torch import Tensor, nn

from dldna import checkpoint
from dldna.backbones import ConvNetConfig, ResNetTrunk, SmallConvNet
from dldna.chapter_10.encoders import ImageTower, TextTower, TowerOutput
from dldna.chapter_10.layers import masked_mean
from dldna.chapter_10.mm.cross_attention import REGISTRY, VERSIONS, UnknownVersionError, get_cross_attention
from dldna.chapter_10.training import RetrievalModel, eval_mode, trim_padding
from dldna.registry import Registry

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODES",
    "CheckpointError",
    "ImageTextMatchingModel",
    "ModelConfig",
    "Sequences",
    "backbone_recipe",
    "build_model",
    "check_versions",
    "load_checkpoint",
    "make_backbone",
    "make_text_encoder",
    "read_checkpoint",
    "save_checkpoint",
]

#: Written into every checkpoint; a file without it was not written by this module.
CHECKPOINT_FORMAT = "dldna.chapter_10.mm/itm-checkpoint-2"
CheckpointError = checkpoint.CheckpointError


class Sequences(NamedTuple):
    """What the cross-attention reads for one modality: tokens and their padding mask."""

    tokens: Tensor  # [N, T, D]
    mask: Tensor  # [N, T] bool, True = real token

    def take(self, rows: Tensor) -> Sequences:
        """The sequences of ``rows`` (repeats allowed): how pairs are formed."""
        return Sequences(self.tokens.index_select(0, rows), self.mask.index_select(0, rows))


def pool_grid(tokens: Tensor, grid: int | None) -> Tensor:
    """Average-pool a square ``[B, h*w, D]`` token grid to ``[B, grid*grid, D]``.

    Fewer image tokens make the pairwise cross-attention affordable; each pooled token
    still covers one region of the picture.
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


# ----------------------------------------------------------------------------- modes


class Mode:
    """How one mode turns tower outputs into sequences, and a batch into training logits."""

    name: str = ""

    def image_sequences(self, out: TowerOutput, grid: int | None) -> Sequences:
        raise NotImplementedError

    def text_sequences(self, out: TowerOutput) -> Sequences:
        raise NotImplementedError

    def training_logits(self, model: ImageTextMatchingModel, images: Sequences, texts: Sequences) -> Tensor:
        """``[B, B]`` logits of a training batch; by default every pair scored on its own."""
        return model.score(images, texts)


#: Mode name -> behaviour, in the order the study reports them.
MODE_REGISTRY: Registry[Mode] = Registry("ablation mode")


def _register_mode(cls: type[Mode]) -> type[Mode]:
    MODE_REGISTRY.add(cls.name, cls())
    return cls


def _single(vector: Tensor) -> Sequences:
    mask = torch.ones(vector.shape[0], 1, dtype=torch.bool, device=vector.device)
    return Sequences(vector.unsqueeze(1), mask)  # [N, 1, D]


@_register_mode
class FaithfulMode(Mode):
    """The original protocol: pooled vectors as length-1 sequences (erratum 3)."""

    name = "faithful"

    def image_sequences(self, out: TowerOutput, grid: int | None) -> Sequences:
        return _single(out.pooled)

    def text_sequences(self, out: TowerOutput) -> Sequences:
        return _single(out.pooled)

    def training_logits(self, model: ImageTextMatchingModel, images: Sequences, texts: Sequences) -> Tensor:
        """Fused image ``i`` vs fused text ``j``, each fused from its own pair ``(i, i)``.

        Both vectors of a diagonal entry were computed from the same image and caption, so
        the loss can fall without the towers aligning the two modalities.
        """
        rows = torch.arange(len(images.tokens), device=images.tokens.device)
        image_vec, text_vec = model.fuse(images, texts, rows, rows)  # [B, D] each
        return model.scale() * F.normalize(image_vec, dim=-1) @ F.normalize(text_vec, dim=-1).t()  # [B, B]


@_register_mode
class TokenMode(Mode):
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


#: The two modes, in the order the study reports them.
MODES: tuple[str, ...] = MODE_REGISTRY.names()


def check_versions(versions: Any) -> list[str]:
    """A non-empty list of known, distinct cross-attention versions (a string is one version)."""
    if isinstance(versions, str):
        versions = [versions]
    versions = list(versions or [])
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


class ImageTextMatchingModel(RetrievalModel):
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
        init_temperature: CLIP's 0.07; ``logit_scale`` stores ``log(1 / temperature)``.

    The score of a pair is ``exp(logit_scale) * cos(mean(image_out), mean(text_out))``, the
    fused outputs averaged over their real tokens: one head for both modes.
    """

    #: Pairs scored at once by ``score_all``: each pair materialises its own token tensors.
    pairs_per_block = 2048

    def __init__(
        self,
        cross_attention: nn.Module,
        image_tower: ImageTower,
        text_tower: TextTower,
        mode: str = "tokens",
        dim: int | None = None,
        image_grid: int | None = None,
        init_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self._mode = MODE_REGISTRY.get(mode)
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
        self.init_logit_scale(init_temperature)
        #: The recipe this model was built from (set by :func:`build_model`); checkpoints need it.
        self.config: ModelConfig | None = None

    @property
    def version(self) -> str:
        return getattr(self.cross_attention, "version", "")

    def embed_images(self, images: Tensor) -> Sequences:
        """``[B, 3, H, W]`` -> the image sequences this mode feeds the cross-attention."""
        return self._mode.image_sequences(self.image_tower(images), self.image_grid)

    def embed_texts(self, input_ids: Tensor, attention_mask: Tensor) -> Sequences:
        """Token ids ``[B, L]`` -> the text sequences this mode feeds the cross-attention."""
        input_ids, attention_mask = trim_padding(input_ids, attention_mask)
        return self._mode.text_sequences(self.text_tower(input_ids, attention_mask))

    encode_images = embed_images
    encode_texts = embed_texts

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

    def score(self, image_rep: Sequences, text_rep: Sequences) -> Tensor:
        """Every image against every caption, each pair fused on its own: ``[N_img, N_txt]``."""
        n_img, n_txt = len(image_rep.tokens), len(text_rep.tokens)
        device = image_rep.tokens.device
        rows = torch.arange(n_img, device=device).repeat_interleave(n_txt)  # [I*T] 0,0,..,1,1,..
        cols = torch.arange(n_txt, device=device).repeat(n_img)  # [I*T] 0,1,..,0,1,..
        return self.pair_scores(image_rep, text_rep, rows, cols).view(n_img, n_txt)

    def similarity(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Training logits ``[B, B]`` (image ``i`` x caption ``j``, matches on the diagonal)."""
        image_rep, text_rep = self.embed_images(images), self.embed_texts(input_ids, attention_mask)
        return self._mode.training_logits(self, image_rep, text_rep)

    @torch.no_grad()
    def score_matrix(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Scores ``[N_images, N_captions]`` of every image with every caption, in eval mode.

        The towers run once per image and once per caption; only the cross-attention
        runs per pair, in blocks of :attr:`pairs_per_block` pairs.
        """
        with eval_mode(self):
            input_ids, attention_mask = trim_padding(input_ids, attention_mask)
            return self.score_all(self.embed_images(images), self.embed_texts(input_ids, attention_mask))


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
    init_temperature: float = 0.07
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


#: Backbone recipe name -> builder, see :func:`make_backbone`.
BACKBONES: Registry[Any] = Registry("backbone recipe", error=checkpoint.CheckpointError)


@BACKBONES.register("small_convnet")
def _small_convnet(recipe: dict[str, Any]) -> nn.Module:
    defaults = ConvNetConfig()
    channels = tuple(recipe.get("channels", defaults.channels))
    strides = tuple(recipe.get("strides", defaults.strides))
    return SmallConvNet(ConvNetConfig(channels=channels, strides=strides))


@BACKBONES.register("resnet")
def _resnet(recipe: dict[str, Any]) -> nn.Module:
    import torchvision

    return ResNetTrunk(getattr(torchvision.models, f"resnet{int(recipe['depth'])}")(weights=None))


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
    return BACKBONES.get(recipe.get("name"))(recipe)


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
    MODE_REGISTRY.get(config.mode)
    check_versions([config.version])
    backbone = backbone if backbone is not None else make_backbone(config.backbone)
    text_encoder = text_encoder if text_encoder is not None else make_text_encoder(config.text_encoder)
    image_tower = ImageTower(backbone, config.dim)
    text_tower = TextTower(text_encoder, config.dim)
    cross_attention = get_cross_attention(config.version, config.attention_config())
    model = ImageTextMatchingModel(
        cross_attention, image_tower, text_tower, mode=config.mode, dim=config.dim,
        image_grid=config.image_grid, init_temperature=config.init_temperature,
    )  # fmt: skip
    model.config = config
    return model


# ----------------------------------------------------------------------- checkpoints


def save_checkpoint(model: ImageTextMatchingModel, path: str | os.PathLike[str], tokenizer: Any) -> Path:
    """Save weights, version, mode, build recipe and tokenizer (see :mod:`dldna.checkpoint`).

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
    return checkpoint.save(
        path, CHECKPOINT_FORMAT, model, version=model.version, mode=model.mode, config=asdict(model.config),
        tokenizer=checkpoint.tokenizer_record(tokenizer),
    )  # fmt: skip


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` and check that it is one of our checkpoints."""
    payload = checkpoint.read(path, CHECKPOINT_FORMAT, required=("version", "mode", "config", "tokenizer"))
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
    checkpoint.load_into(model, payload, path)
    tokenizer = checkpoint.tokenizer_from_record(payload["tokenizer"])
    return model.to(device).eval(), tokenizer, payload
