"""Section 10.4: a dual encoder that maps images and captions into one embedding space.

An image tower (ResNet-18, or a small CNN in the smoke profile) and a text tower (BERT)
each end in a linear projection followed by LayerNorm, to a common width ``D``. The two
vectors are L2-normalised, so their dot product is a cosine similarity, and multiplied by
a learnable scale ``1 / temperature``. Training pulls each image towards its own caption
and pushes it away from the other captions of the batch, in both directions
(:func:`contrastive_loss`), as in CLIP.

The towers never see each other's input: image ``i``'s embedding cannot depend on caption
``j``. That is what makes a dual encoder a retrieval model: embed a collection once, then
answer any query with one matrix product.

Usage (the notebook ``10_04`` does this)::

    run = setup("smoke")
    data = prepare_caption_data(run)
    model, tokenizer = build_multimodal_embedding(run, texts=[c for _, c in read_captions(data.caption_file)])
    splits = cached_splits(data, tokenizer, default_image_size(run))
    history = train_multimodal_embedding(model, splits["train"], splits["val"], num_epochs=3, lr=1e-4)
    examples = generate_example(model, splits["test"])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dldna.chapter_10.encoders import ImageTower, TextTower, TowerOutput
from dldna.chapter_10.losses import contrastive_loss
from dldna.chapter_10.examples import generate_example
from dldna.chapter_10.training import RetrievalModel, check_temperature, train_retrieval_model
from dldna.data.cache import CachedSplit
from dldna.data.flickr8k import Flickr8kDataset
from dldna.loaders import load_bert, load_image_backbone, profile_sizes
from dldna.registry import Registry
from dldna.runtime import Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "Flickr8kDataset",
    "MultimodalEmbedding",
    "MultimodalEmbeddingConfig",
    "TEXT_POOLING",
    "build_multimodal_embedding",
    "build_towers",
    "contrastive_loss",
    "generate_example",
    "train_multimodal_embedding",
]

#: How a caption's word vectors become one vector: ``(text_tower, tower_output) -> [B, D]``.
TEXT_POOLING: Registry[Callable[[TextTower, TowerOutput], Tensor]] = Registry("text pooling")
register_text_pooling = TEXT_POOLING.register


@register_text_pooling("cls")
def cls_pooling(tower: TextTower, out: TowerOutput) -> Tensor:
    """The [CLS] state, projected and normalised: the original chapter's choice.

    Good with pretrained BERT, whose [CLS] was trained to summarise a sentence pair.
    """
    return out.pooled  # [B, D]


@register_text_pooling("mean")
def mean_pooling(tower: TextTower, out: TowerOutput) -> Tensor:
    """The average of the real (unpadded) word vectors, through the tower's LayerNorm.

    Mean pooling gives better sentence vectors than [CLS] (Sentence-BERT, 2019) and lets a
    randomly initialised encoder learn far faster: every word reaches the embedding
    directly instead of through what attention has learned to route into [CLS]. Measured
    on synthetic shapes (240 images, 32 px, 25 epochs, same seed): held-out text->image
    R@1 0.38 versus 0.12 with [CLS].
    """
    weights = out.mask.unsqueeze(-1).to(out.tokens.dtype)  # [B, L, 1]
    mean = (out.tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # [B, D]
    return tower.norm(mean)


@dataclass
class MultimodalEmbeddingConfig:
    """The temperature starts at 0.07 (CLIP's value) and ``1 / temperature`` is capped at 100.

    ``text_pooling`` is a key of :data:`TEXT_POOLING`: ``"mean"`` (default) or ``"cls"``.
    """

    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    text_pooling: str = "mean"

    def __post_init__(self) -> None:
        TEXT_POOLING.get(self.text_pooling)  # an unknown name lists the known ones
        check_temperature(self.init_temperature, self.max_logit_scale)


def check_towers(image_tower: nn.Module, text_tower: nn.Module) -> int:
    """Check the two towers and return their common width ``D``."""
    if not isinstance(image_tower, ImageTower) or not isinstance(text_tower, TextTower):
        raise TypeError(
            "Expected an ImageTower and a TextTower from dldna.chapter_10.encoders (build them with "
            f"build_towers(runtime, texts)); got {type(image_tower).__name__} and {type(text_tower).__name__}."
        )
    image_dim, text_dim = image_tower.proj.out_features, text_tower.proj.out_features
    if image_dim != text_dim:
        raise ValueError(
            f"The towers project to different widths (image {image_dim}, text {text_dim}); "
            "build both with the same dim."
        )
    return image_dim


class MultimodalEmbedding(RetrievalModel):
    """Dual encoder: pooled image and text vectors, projected, normalised, compared.

    The projections with LayerNorm are the towers' own (``ImageTower.proj``/``.norm`` on
    the average-pooled feature map, ``TextTower.proj``/``.norm`` on BERT's states):
    "ResNet with its classifier replaced by Linear + LayerNorm" and "BERT -> Linear +
    LayerNorm" of the original. The original read BERT's [CLS] state
    (``text_pooling="cls"``); the default here averages the word states (``"mean"``),
    which trains much faster from scratch, see :func:`mean_pooling`. ``logit_scale`` is
    stored as a log, so the optimiser can never make it negative, starting at
    ``log(1 / 0.07)``.
    """

    def __init__(
        self,
        image_tower: ImageTower,
        text_tower: TextTower,
        config: MultimodalEmbeddingConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config or MultimodalEmbeddingConfig()
        self.embedding_dim = check_towers(image_tower, text_tower)
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.init_logit_scale(self.config.init_temperature, self.config.max_logit_scale)

    def encode_image(self, images: Tensor) -> Tensor:
        """L2-normalised image embeddings ``[B, D]`` of ``images [B, 3, H, W]``."""
        return F.normalize(self.image_tower(images).pooled.float(), dim=-1)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """L2-normalised caption embeddings ``[B, D]``.

        Pooled as ``config.text_pooling`` says.
        """
        pooled = TEXT_POOLING[self.config.text_pooling](
            self.text_tower, self.text_tower(input_ids, attention_mask)
        )
        return F.normalize(pooled.float(), dim=-1)

    embed_images = encode_image
    embed_texts = encode_text

    def score(self, image_rep: Tensor, text_rep: Tensor) -> Tensor:
        # A cosine times up to 100 needs more than bf16's 3 significant digits:
        # float32 here.
        with torch.autocast(device_type=image_rep.device.type, enabled=False):
            return (
                self.scale() * image_rep.float() @ text_rep.float().t()
            )  # [N_img, N_txt]


def build_towers(
    runtime: Runtime, texts: Sequence[str] | None = None, dim: int | None = None
) -> tuple[ImageTower, TextTower, Any]:
    """Image and text towers of the run's profile, and the tokenizer that goes with BERT.

    ``full``: ResNet-18 trunk and BERT-base (pretrained online, random weights offline);
    ``smoke``: a small CNN and a 2-layer BERT whose WordPiece vocabulary is trained on
    ``texts`` (the dataset's captions). ``dim`` defaults to the run's embedding width
    (512, the original's, with the full-size towers; 64 with the small ones).
    """
    dim = dim or profile_sizes(runtime).embedding_dim
    backbone = load_image_backbone(runtime)
    bert, tokenizer = load_bert(runtime, texts=texts)
    image_tower, text_tower = ImageTower(backbone, dim), TextTower(bert, dim)
    return image_tower.to(runtime.device), text_tower.to(runtime.device), tokenizer


def build_multimodal_embedding(
    runtime: Runtime,
    texts: Sequence[str] | None = None,
    dim: int | None = None,
    config: MultimodalEmbeddingConfig | None = None,
) -> tuple[MultimodalEmbedding, Any]:
    """A :class:`MultimodalEmbedding` on :func:`build_towers`, and its tokenizer."""
    image_tower, text_tower, tokenizer = build_towers(runtime, texts, dim)
    return MultimodalEmbedding(image_tower, text_tower, config).to(runtime.device), tokenizer


def train_multimodal_embedding(
    model: MultimodalEmbedding,
    train_data: CachedSplit | Iterable,
    val_data: CachedSplit,
    num_epochs: int = 3,
    lr: float = 1e-4,
    device: torch.device | str | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **config: Any,
) -> pd.DataFrame:
    """Train the dual encoder with the shared loop; one history row per epoch.

    ``train_data``: a ``CachedSplit`` (fast) or a ``DataLoader`` of ``(images, input_ids,
    attention_mask)``; ``val_data``: a ``CachedSplit``. Extra keyword arguments are
    :class:`~dldna.chapter_10.training.TrainConfig` fields (``batch_size``, ``seed``...).
    """
    if not isinstance(model, MultimodalEmbedding):
        raise TypeError(f"train_multimodal_embedding trains a MultimodalEmbedding; got {type(model).__name__}.")
    return train_retrieval_model(model, train_data, val_data, num_epochs, lr, device, checkpoint_path, **config)
