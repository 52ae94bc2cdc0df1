"""Train one image-text matching model per cross-attention version (section 10.6).

The chapter's public names for the ablation, gathered from the modules that hold them:

* :mod:`.model`: :class:`ImageTextMatchingModel` (a
  :class:`~dldna.chapter_10.training.RetrievalModel`) in ``faithful`` and ``tokens`` mode,
  :class:`ModelConfig`, :func:`build_model` and the checkpoint functions;
* :mod:`.features`: frozen encoders, pre-trained once as the chapter's dual encoder,
  and their cached outputs;
* :mod:`.run`: :class:`RunConfig` (every setting, spelled once) and the resumable
  :func:`run_training`.

Training itself is the chapter's one loop, :func:`dldna.chapter_10.training.fit`;
``train(model, train_split, val_split, epochs, lr, ...)`` is its chapter-style wrapper.
"""

from __future__ import annotations

from dldna.chapter_10.losses import contrastive_loss
from dldna.chapter_10.mm.cross_attention import get_cross_attention
from dldna.chapter_10.mm.features import (
    FeatureMapInput,
    FeatureSplit,
    HiddenStateInput,
    attach_encoders,
    precompute_features,
    pretrain_encoders,
)
from dldna.chapter_10.mm.model import (
    CHECKPOINT_FORMAT,
    MODES,
    CheckpointError,
    ImageTextMatchingModel,
    ModelConfig,
    Sequences,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from dldna.chapter_10.mm.run import KS, RunConfig, chance_recall, checkpoint_path, result_path, run_training
from dldna.chapter_10.training import train_retrieval_model as train

__all__ = [
    "CHECKPOINT_FORMAT",
    "KS",
    "MODES",
    "CheckpointError",
    "FeatureMapInput",
    "FeatureSplit",
    "HiddenStateInput",
    "ImageTextMatchingModel",
    "ModelConfig",
    "RunConfig",
    "Sequences",
    "attach_encoders",
    "build_model",
    "chance_recall",
    "checkpoint_path",
    "contrastive_loss",
    "get_cross_attention",
    "load_checkpoint",
    "precompute_features",
    "pretrain_encoders",
    "read_checkpoint",
    "result_path",
    "run_training",
    "save_checkpoint",
    "train",
]
