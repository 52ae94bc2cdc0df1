"""The resumable ablation run: every version trained under identical conditions.

:class:`RunConfig` is the one place the ablation's settings are spelled: the study's
presets are instances of it, its command-line options are generated from its fields
(:func:`add_config_arguments`), and :func:`run_training` takes its fields as keyword
arguments. Each version is a :class:`~dldna.chapter_10.mm.model.ImageTextMatchingModel`
trained by the chapter's one loop, :func:`~dldna.chapter_10.training.fit` (AdamW without
decay on vectors and the temperature, the same schedules, divergence handling and GPU
speed-ups as 10.4 and 10.5), then scored by Recall@K on held-out images.

Every finished version writes ``<output_dir>/<mode>/seed<seed>/result_<version>.json``
(its row, finite numbers only) and ``model_final_<version>.pth``; the result records the
checkpoint's size and SHA-256, and a rerun reuses a version only when its settings, data
and checkpoint all still match. A version whose loss becomes NaN or infinite is recorded
as ``diverged`` and the run goes on.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pandas as pd
import torch
from tqdm.auto import tqdm

from dldna import checkpoint, params
from dldna.atomic import atomic_write_json
from dldna.chapter_10.mm.cross_attention import VERSIONS
from dldna.chapter_10.mm.features import (
    FeatureMapInput,
    HiddenStateInput,
    attach_encoders,
    precompute_features,
    pretrained_encoders,
)
from dldna.chapter_10.mm.model import (
    MODE_REGISTRY,
    ModelConfig,
    backbone_recipe,
    build_model,
    check_versions,
    save_checkpoint,
)
from dldna.chapter_10.training import (
    Speedups,
    TrainConfig,
    TrainingDivergedError,
    evaluate,
    fit,
    steps_per_epoch,
)
from dldna.data.cache import CachedSplit, cached_split
from dldna.data.flickr8k import Flickr8kDataset, load_or_create_split, read_captions
from dldna.runtime import Runtime, seed_everything, setup
from dldna.timing import ExpectedRunTime

logger = logging.getLogger(__name__)

__all__ = [
    "KS",
    "RunConfig",
    "add_config_arguments",
    "chance_recall",
    "checkpoint_path",
    "config_from_arguments",
    "eval_subset",
    "result_path",
    "run_training",
]

#: Recall@K cut-offs reported everywhere.
KS: tuple[int, ...] = (1, 5, 10)

#: Fields of :class:`RunConfig` that say *which* runs a study makes, not how one trains.
STUDY_FIELDS = ("seeds", "modes", "versions", "images")


def _option(help: str, default: Any = None, *, factory: Any = None, flag: str | None = None) -> Any:
    metadata = {"help": help, "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """Every setting of the ablation, spelled once (presets, command line, ``run_training``)."""

    seeds: tuple[int, ...] = _option("training seeds of a study", (0, 1, 2))
    modes: tuple[str, ...] = _option("modes of a study", ("faithful", "tokens"))
    versions: tuple[str, ...] | None = _option("versions of a study (default: all 17)")
    images: int | None = _option("synthetic images to generate (ignored for real Flickr8k)")
    epochs: int = _option("training epochs per version", 5)
    lr: float = _option("learning rate (AdamW)", 1e-4)
    batch_size: int = _option("image-caption pairs per batch", 32)
    weight_decay: float = _option("AdamW weight decay on weight matrices", 0.01)
    grad_clip: float | None = _option("clip the gradient norm at this value (default: no clipping)")
    lr_schedule: str = _option("learning-rate schedule: constant or cosine", "constant")
    dim: int = _option("shared width of towers and cross-attention", 64)
    num_heads: int = _option("attention heads", 4)
    dropout: float = _option("dropout inside the cross-attention", 0.1)
    image_size: int = _option("image side in pixels", 64)
    image_grid: int | None = _option("pool image tokens to a grid x grid (default: backbone's grid)", 4)
    max_length: int = _option("caption tokens (padding included)", 32)
    max_images: int | None = _option("training images used (default: all)", flag="--train-images")
    eval_images: int | None = _option("held-out images for Recall@K (default: all)", 100)
    eval_captions_per_image: int | None = _option("captions per held-out image (default: all)", 1)
    freeze_encoders: bool = _option("freeze the encoders and cache their outputs", False)
    pretrain_epochs: int = _option("epochs of dual-encoder pre-training (0: none)", 0)
    pretrain_lr: float = _option("learning rate of the pre-training", 1e-3)
    split_seed: int = _option("seed of the image-level split (and of the synthetic data)", 0)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("Invalid ablation settings: " + "; ".join(problems) + ".")

    def problems(self) -> list[str]:
        """One sentence per setting that is out of range (see :func:`dldna.params.problems`)."""
        optional_positive_int = params.optional(params.positive_int)
        return params.problems(
            {
                **{name: (getattr(self, name), params.positive_int)
                   for name in ("epochs", "num_heads", "dim", "image_size", "max_length")},
                **{name: (getattr(self, name), params.non_negative_int) for name in ("pretrain_epochs", "split_seed")},
                **{name: (getattr(self, name), params.positive_number) for name in ("lr", "pretrain_lr")},
                **{name: (getattr(self, name), optional_positive_int)
                   for name in ("images", "max_images", "eval_images", "eval_captions_per_image", "image_grid")},
                "weight_decay": (self.weight_decay, params.non_negative_number),
                "grad_clip": (self.grad_clip, params.optional(params.positive_number, "no clipping")),
                # a batch of one pair has no negatives
                "batch_size": (self.batch_size, params.integer(minimum=2)),
                "dropout": (self.dropout, params.number(at_least=0, below=1)),
                "seeds": (self.seeds, params.list_of(params.non_negative_int)),
                "modes": (self.modes, params.list_of(params.choice(*MODE_REGISTRY.names()))),
                "versions": (self.versions, params.optional(params.list_of(params.choice(*VERSIONS)), "all 17")),
            }
        )  # fmt: skip

    def training_fields(self) -> dict[str, Any]:
        """The settings that change how one version trains (what a result is keyed by)."""
        return {k: v for k, v in asdict(self).items() if k not in STUDY_FIELDS}

    def fingerprint(self, mode: str, seed: int, data_key: str) -> str:
        """A short hash of the training settings, mode, seed and data: results are reused only when it matches."""
        text = json.dumps({"run": self.training_fields(), "mode": mode, "seed": seed, "data": data_key}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def train_config(self, seed: int, progress: bool = False) -> TrainConfig:
        """The :class:`~dldna.chapter_10.training.TrainConfig` of one version."""
        return TrainConfig(
            num_epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size,
            grad_clip=self.grad_clip, lr_schedule=self.lr_schedule, seed=seed, progress=progress,
            in_batch_metrics=True,
        )  # fmt: skip

    def pretrain_config(self, seed: int) -> TrainConfig:
        """The :class:`~dldna.chapter_10.training.TrainConfig` of the encoders' pre-training."""
        return TrainConfig(
            num_epochs=self.pretrain_epochs, lr=self.pretrain_lr, batch_size=self.batch_size, seed=seed,
            progress=False,
        )  # fmt: skip


# -------------------------------------------------------------------- command line


def _base_type(annotation: Any) -> tuple[type, bool, bool]:
    """``(element type, optional, sequence)`` of a field annotation such as ``tuple[int, ...] | None``."""
    args = get_args(annotation)
    optional = type(None) in args
    if optional:
        annotation = next(a for a in args if a is not type(None))
    if get_origin(annotation) is tuple:
        return get_args(annotation)[0], optional, True
    return annotation, optional, False


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per :class:`RunConfig` field (default: the profile's preset)."""
    hints = get_type_hints(RunConfig)
    for item in fields(RunConfig):
        kind, _, sequence = _base_type(hints[item.name])
        flag = item.metadata.get("flag") or "--" + item.name.replace("_", "-")
        convert = _parse_bool if kind is bool else kind
        parser.add_argument(
            flag, dest=item.name, type=convert, nargs="+" if sequence else None, default=None,
            help=item.metadata["help"] + " (default: the profile's preset)",
        )  # fmt: skip


def config_from_arguments(preset: RunConfig, args: argparse.Namespace) -> RunConfig:
    """``preset`` with every option given on the command line replaced."""
    overrides = {}
    for item in fields(RunConfig):
        value = getattr(args, item.name, None)
        if value is not None:
            overrides[item.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(preset, **overrides)


# ---------------------------------------------------------------------- evaluation


def chance_recall(n_images: int, captions_per_image: int, k: int) -> float:
    """Expected Recall@K (mean of both directions) of a model that ranks at random."""
    k_t2i = min(k, n_images) / n_images
    n_texts = n_images * captions_per_image
    wrong = n_texts - captions_per_image
    miss = math.comb(wrong, k) / math.comb(n_texts, k) if k <= wrong else 0.0
    return (k_t2i + (1.0 - miss)) / 2


def eval_subset(split: CachedSplit, n_images: int | None, captions_per_image: int | None) -> CachedSplit:
    """The first ``n_images`` images of ``split`` with ``captions_per_image`` captions each."""
    n = split.num_images if n_images is None else min(n_images, split.num_images)
    by_image: dict[int, list[int]] = {}
    for caption, row in enumerate(split.image_index.tolist()):
        if row < n and (captions_per_image is None or len(by_image.get(row, [])) < captions_per_image):
            by_image.setdefault(row, []).append(caption)
    rows = sorted(by_image)
    captions = torch.tensor([c for r in rows for c in by_image[r]], dtype=torch.long)
    position = {r: i for i, r in enumerate(rows)}
    return dataclasses.replace(
        split, images=split.images[rows], image_names=[split.image_names[r] for r in rows],
        captions=[split.captions[c] for c in captions.tolist()], input_ids=split.input_ids[captions],
        attention_mask=split.attention_mask[captions],
        image_index=torch.tensor([position[int(split.image_index[c])] for c in captions], dtype=torch.long),
    )  # fmt: skip


# ------------------------------------------------------------------------- results


def result_path(output_dir: str | os.PathLike[str], mode: str, seed: int, version: str) -> Path:
    """Where one version's result row lives: ``output_dir/<mode>/seed<seed>/result_<version>.json``."""
    return Path(output_dir) / mode / f"seed{seed}" / f"result_{version}.json"


def checkpoint_path(output_dir: str | os.PathLike[str], mode: str, seed: int, version: str) -> Path:
    """Where one version's final weights live: ``.../<mode>/seed<seed>/model_final_<version>.pth``."""
    return Path(output_dir) / mode / f"seed{seed}" / f"model_final_{version}.pth"


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None`` (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _finished(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved result at ``path`` if it belongs to this exact run and its checkpoint is intact."""
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("Unreadable result %s; training that version again.", path)
        return None
    if not isinstance(row, dict):
        logger.warning("%s holds a JSON %s, not a result; training that version again.", path, type(row).__name__)
        return None
    if row.get("fingerprint") != fingerprint:
        logger.warning("%s was produced with other settings or data; training that version again.", path)
        return None
    if row.get("status") == "ok":
        problem = checkpoint.verify_file(path.parent / str(row.get("checkpoint", "")), row.get("checkpoint_file"))
        if problem:
            logger.warning("%s: %s; training that version again.", path, problem)
            return None
    return row


# ---------------------------------------------------------------------------- run


@dataclass
class _Prepared:
    """Data and shared starting weights of one run, built once for all versions."""

    train: CachedSplit
    val: CachedSplit
    test: CachedSplit
    tokenizer: Any
    backbone: torch.nn.Module
    text_encoder: torch.nn.Module


@dataclass
class _Plan:
    """What a run will use, found cheaply: the split, the tokenizer and a key for both."""

    names: dict[str, list[str]]
    tokenizer: Any
    text_encoder: torch.nn.Module
    data_key: str


def _plan(runtime: Runtime, config: RunConfig, caption_file: Path) -> _Plan:
    from dldna.loaders import CHAPTER_TEXTS, load_bert, model_source

    root = caption_file.parent
    rows = read_captions(caption_file)
    names = list(dict.fromkeys(name for name, _ in rows))
    split = load_or_create_split(root, names, seed=config.split_seed)  # one saved split for every version
    subsets = {
        "train": split["train"][: config.max_images] if config.max_images else split["train"],
        "val": split["val"][: config.eval_images] if config.eval_images else split["val"],
        "test": split["test"],
    }
    too_small = {name: len(subset) for name, subset in subsets.items() if len(subset) < 2}
    if too_small:
        raise ValueError(f"Need at least 2 images in each split, got {too_small} from {caption_file}; use more images.")
    # A locally built vocabulary (small offline BERT) comes from the training captions plus
    # the chapter's sentences, so the zero-shot captions are not all [UNK]; bert-base has its own.
    train_set = set(subsets["train"])
    text_encoder, tokenizer = load_bert(runtime, texts=[*(c for n, c in rows if n in train_set), *CHAPTER_TEXTS])
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    digest = hashlib.sha256(
        json.dumps([subsets, str(root.resolve()), vocabulary, model_source("bert", runtime)]).encode()
    ).hexdigest()  # results and pre-trained encoders are reused only for this exact data and vocabulary
    return _Plan(subsets, tokenizer, text_encoder, digest[:16])


def _prepare(
    plan: _Plan, runtime: Runtime, config: RunConfig, seed: int, image_dir: Path, caption_file: Path,
    output_dir: Path,
) -> _Prepared:  # fmt: skip
    """Build the shared encoders (same seed: same weights) and the cached splits."""
    from dldna.loaders import load_image_backbone

    text_encoder, tokenizer = plan.text_encoder, plan.tokenizer
    text_encoder.pooler = None  # the towers read token states only; an unused pooler gets no gradient
    seed_everything(seed)
    backbone = load_image_backbone(runtime)

    def split_of(subset: list[str]) -> CachedSplit:
        dataset = Flickr8kDataset(
            image_dir, caption_file, tokenizer=tokenizer, max_length=config.max_length, images=subset
        )
        return cached_split(dataset, config.image_size)

    splits = {name: split_of(plan.names[name]) for name in ("train", "val", "test")}
    if config.pretrain_epochs > 0:
        seed_everything(seed)
        pretrained_encoders(
            backbone, text_encoder, splits["train"], eval_subset(splits["val"], None, 1),
            config.pretrain_config(seed), config.dim, output_dir / "encoders",
            {"data": plan.data_key, "image_size": config.image_size, "max_length": config.max_length},
            runtime.device,
        )  # fmt: skip
    if config.freeze_encoders:
        splits = {k: precompute_features(s, backbone, text_encoder, device=runtime.device) for k, s in splits.items()}
    return _Prepared(splits["train"], splits["val"], splits["test"], tokenizer, backbone, text_encoder)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _train_one(
    version: str, mode: str, seed: int, config: RunConfig, data: _Prepared, runtime: Runtime, output_dir: Path,
    progress: bool, expected_time: ExpectedRunTime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train, evaluate and save one version; return its result row."""
    seed_everything(seed)  # same start for every version, resumed or not
    model_config = ModelConfig(
        version=version, mode=mode, dim=config.dim, num_heads=config.num_heads, dropout=config.dropout,
        image_grid=config.image_grid, image_size=config.image_size, max_length=config.max_length,
        backbone=backbone_recipe(data.backbone), text_encoder=data.text_encoder.config.to_dict(),
    )  # fmt: skip
    if config.freeze_encoders:  # train on the cached encoder outputs
        backbone, text_encoder = FeatureMapInput(data.backbone.out_channels), HiddenStateInput(data.text_encoder.config)
    else:
        backbone, text_encoder = copy.deepcopy(data.backbone), copy.deepcopy(data.text_encoder)
    model = build_model(model_config, backbone=backbone, text_encoder=text_encoder).to(runtime.device)
    val = eval_subset(data.val, config.eval_images, config.eval_captions_per_image)
    speed = Speedups.for_device(runtime.device)  # what fit uses with the default TrainConfig
    row: dict[str, Any] = {
        "version": version, "mode": mode, "seed": seed, "params": _count(model.cross_attention),
        "trained_params": _count(model), "status": "ok", "stopped": None,
        "speedups": {"autocast": str(speed.autocast_dtype).replace("torch.", "") if speed.autocast_dtype else None,
                     "channels_last": speed.channels_last, "fused_optimizer": speed.fused_optimizer},
    }  # fmt: skip
    try:
        train_config = config.train_config(seed, progress)
        history = fit(model, data.train, val, train_config, runtime.device, expected_time)
        rows = history.to_dict("records")
    except TrainingDivergedError as exc:
        logger.warning("%s (%s, seed %d) diverged at %s", version, mode, seed, exc.where)
        row.update(status="diverged", stopped=exc.where)
        rows = exc.history
    row.update(
        train_loss=[r["train_loss"] for r in rows], val_loss=[r["val_loss"] for r in rows],
        val_batch_acc=[r["val_batch_acc"] for r in rows],
        sec_per_epoch=sum(r["seconds"] for r in rows) / max(len(rows), 1),
    )  # fmt: skip
    row.update({f"{d}R@{k}": None for d in ("i2t_", "t2i_", "") for k in KS}, mean_recall=None)
    start = time.perf_counter()
    if row["status"] == "ok":
        test = eval_subset(data.test, config.eval_images, config.eval_captions_per_image)
        metrics = evaluate(model, test, runtime.device, config.batch_size, ks=KS, seed=seed)
        metrics.pop("loss")
        row.update(metrics, **{f"R@{k}": (metrics[f"i2t_R@{k}"] + metrics[f"t2i_R@{k}"]) / 2 for k in KS})
        row.update(eval_images=test.num_images, eval_captions=len(test))
        if config.freeze_encoders:
            model = attach_encoders(model, data.backbone, data.text_encoder)
        ckpt = save_checkpoint(model, checkpoint_path(output_dir, mode, seed, version), data.tokenizer)
        row.update(checkpoint=ckpt.name, checkpoint_file=checkpoint.file_record(ckpt))
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
    config: RunConfig | None = None,
    output_dir: str | os.PathLike[str] = "runs/ablation",
    resume: bool = True,
    profile: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **settings: Any,
) -> pd.DataFrame:
    """Train and evaluate every version of ``model_versions`` under identical conditions.

    All versions read the same saved image-level split of ``caption_file``'s images
    (``split_seed``), start from the same tower weights (``seed``), see the same batches
    and are scored by Recall@K on the same held-out test images. ``settings`` are
    :class:`RunConfig` fields (``dim``, ``batch_size``, ``freeze_encoders``...), applied on
    top of ``config`` (default: ``RunConfig()``); every setting is checked before any work.

    Each finished version writes ``output_dir/<mode>/seed<seed>/result_<version>.json``
    and, when it trained, ``model_final_<version>.pth`` (checkpoint with version and
    config). With ``resume=True`` versions whose result exists for these exact settings,
    data and vocabulary, and whose checkpoint is intact, are read back, not retrained. A
    NaN/inf loss stops that version only (``status="diverged"``, no checkpoint).

    Encoders: by default the image backbone and BERT train end to end with each version.
    ``pretrain_epochs > 0`` first trains them once as the chapter's dual encoder (cached
    under ``output_dir/encoders``, shared by every version and mode of this seed);
    ``freeze_encoders=True`` then freezes them and computes their outputs once, so each
    version trains only the projections, its cross-attention and the temperature.

    Returns one row per version with ``version, mode, seed, params`` (cross-attention
    parameters; ``trained_params`` for everything trained), ``train_loss``, ``val_loss``
    and ``val_batch_acc`` (lists, one value per epoch; the last is the original's
    in-batch accuracy), ``R@1, R@5, R@10`` (the mean of image->text and text->image, both
    in ``i2t_R@K`` and ``t2i_R@K``), ``eval_images``, ``sec_per_epoch``, ``eval_sec``,
    ``status`` (``"ok"`` or ``"diverged"``) and ``stopped`` (where a diverged run stopped).
    """
    unknown = sorted(set(settings) - {f.name for f in fields(RunConfig)})
    if unknown:
        raise TypeError(f"Unknown run_training settings {unknown}; RunConfig has {[f.name for f in fields(RunConfig)]}.")
    config = dataclasses.replace(config or RunConfig(), epochs=epochs, lr=lr, **settings)
    versions = check_versions(model_versions)
    MODE_REGISTRY.get(mode)
    runtime = setup(profile, device=device, seed=seed)
    image_dir, caption_file = Path(image_dir), Path(caption_file)
    plan = _plan(runtime, config, caption_file)
    fingerprint = config.fingerprint(mode, seed, plan.data_key)
    finished = {
        v: _finished(result_path(output_dir, mode, seed, v), fingerprint) if resume else None for v in versions
    }
    pending = [v for v in versions if finished[v] is None]
    logger.info(
        "%s mode, seed %d: %d train / %d val / %d test images; %d of %d versions to train; results in %s",
        mode, seed, *(len(plan.names[k]) for k in ("train", "val", "test")), len(pending), len(versions),
        Path(output_dir) / mode / f"seed{seed}",
    )  # fmt: skip
    data = _prepare(plan, runtime, config, seed, image_dir, caption_file, Path(output_dir)) if pending else None

    rows: list[dict[str, Any]] = []
    steps = len(pending) * config.epochs * (steps_per_epoch(data.train, config.batch_size) if data else 0)
    expected = ExpectedRunTime(steps, f"training {len(pending)} version(s)", runtime.device)
    bar = tqdm(versions, desc=f"{mode} seed {seed}", unit="version", disable=not progress)
    for version in bar:
        if finished[version] is not None:
            logger.info("%s: reusing %s", version, result_path(output_dir, mode, seed, version))
            rows.append(finished[version])
            continue
        bar.set_postfix(version=version)
        row = _train_one(version, mode, seed, config, data, runtime, Path(output_dir), False, expected)
        row = _finite(row)
        row.update(fingerprint=fingerprint, run_config=config.training_fields())
        atomic_write_json(result_path(output_dir, mode, seed, version), row)  # last: its presence means done
        logger.info(
            "%s (%s, seed %d): %s, R@1 %s, %.1f s/epoch", version, mode, seed, row["status"],
            "n/a" if row["R@1"] is None else f"{row['R@1']:.3f}", row["sec_per_epoch"],
        )  # fmt: skip
        rows.append(row)
    frame = pd.DataFrame(rows)
    hidden = ("fingerprint", "run_config", "checkpoint_file", "speedups")
    return frame.drop(columns=[c for c in hidden if c in frame.columns])
