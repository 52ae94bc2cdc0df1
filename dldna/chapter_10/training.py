"""One training and evaluation loop for every image-text retrieval model of the chapter.

Sections 10.4 (a dual encoder) and 10.5 (cross-modal attention) train the same way:
a batch of ``B`` matching image-caption pairs gives a ``[B, B]`` score matrix, the
symmetric contrastive loss pulls the diagonal up, and after each epoch the model ranks
the whole held-out split (every image against every caption, five per image) to report
Recall@K. So the loop here knows nothing about the architecture. A model subclasses
:class:`RetrievalModel` and says how to

* ``embed_images(images)``: per-image work, done once per image (a vector, or tokens),
* ``embed_texts(input_ids, attention_mask)``: per-caption work, done once per caption,
* ``score(image_rep, text_rep)``: the ``[N_img, N_txt]`` scores between the two.

A dual encoder's score is a dot product; a cross-attention model's score does its
pairwise work inside ``score``. Splitting the model this way is what makes retrieval
over a whole split affordable: images and captions are encoded once, and only the
(cheap) scoring step sees every pair.

What the loop adds, in one place: AdamW (no weight decay on biases, norms and the
temperature), learning-rate schedules, a tqdm progress bar, per-epoch train/validation
loss and Recall@1/5/10 in both directions, the best checkpoint saved atomically (weights
+ config + epoch, see :mod:`dldna.checkpoint`), the history as a ``pandas.DataFrame``,
and :class:`TrainingDivergedError` when the loss stops being finite. On CUDA it also uses
mixed precision (bf16, or fp16 with loss scaling on GPUs without bf16), channels-last
images and the fused AdamW kernel. The same loop trains the dual encoder (10.4), the
cross-modal embedding (10.5) and every model of the cross-attention ablation (10.6).
Retrieval examples (tables and picture grids) live in :mod:`.examples`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from dldna import checkpoint, params
from dldna.chapter_10.layers import LogitScale, check_temperature, clamped_logit_scale
from dldna.chapter_10.losses import contrastive_loss
from dldna.chapter_10.metrics import recall_at_k_from_scores
from dldna.data.cache import CachedSplit, cached_split
from dldna.loaders import profile_sizes
from dldna.registry import Registry
from dldna.runtime import Runtime, select_device
from dldna.timing import ExpectedRunTime

logger = logging.getLogger(__name__)

#: What ``embed_images``/``embed_texts`` return: a tensor, or a (named) tuple of
#: tensors, batch first. The loop only concatenates, slices and moves them.
Rep = Union[Tensor, tuple[Tensor, ...]]

#: Format tag of :func:`save_checkpoint` files.
CHECKPOINT_FORMAT = "dldna.chapter_10/retrieval-checkpoint-1"


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite.

    ``history`` holds the rows of the epochs that finished before it happened and
    ``where`` says where it stopped, so a caller can record the run as diverged.
    """

    def __init__(self, message: str, history: list[dict[str, Any]] | None = None, where: str = "") -> None:
        super().__init__(message)
        self.history = list(history or [])
        self.where = where


# ----------------------------------------------------------------------------- model API


def _rep_map(fn: Callable[[Tensor], Tensor], rep: Rep) -> Rep:
    if isinstance(rep, Tensor):
        return fn(rep)
    parts = [fn(x) for x in rep]
    return tuple(parts) if type(rep) is tuple else type(rep)(*parts)


def _rep_cat(reps: Sequence[Rep]) -> Rep:
    first = reps[0]
    if isinstance(first, Tensor):
        return torch.cat(list(reps))
    parts = [torch.cat(list(column)) for column in zip(*reps)]
    return tuple(parts) if type(first) is tuple else type(first)(*parts)


def _rep_len(rep: Rep) -> int:
    return (rep if isinstance(rep, Tensor) else rep[0]).shape[0]


class RetrievalModel(nn.Module):
    """Base class of the chapter's image-text retrieval models.

    Subclasses implement :meth:`embed_images`, :meth:`embed_texts` and :meth:`score`.
    ``pairs_per_block`` bounds how many image-text pairs :meth:`score_all` scores at
    once; a dual encoder can score everything in one matrix product, a cross-attention
    model materialises per-pair tensors and needs smaller blocks.
    """

    pairs_per_block: int = 1 << 40

    def embed_images(self, images: Tensor) -> Rep:
        """Per-image representation of ``images [B, 3, H, W]``."""
        raise NotImplementedError

    def embed_texts(self, input_ids: Tensor, attention_mask: Tensor) -> Rep:
        """Per-caption representation of ``input_ids [B, L]`` with ``attention_mask [B, L]``."""
        raise NotImplementedError

    def score(self, image_rep: Rep, text_rep: Rep) -> Tensor:
        """Scores (logits, temperature included) ``[N_img, N_txt]`` of every image against every text."""
        raise NotImplementedError

    def similarity(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Training logits ``[B_img, B_txt]``: image ``i`` against caption ``j``."""
        return self.score(self.embed_images(images), self.embed_texts(input_ids, attention_mask))

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.similarity(images, input_ids, attention_mask)  # [B, B]

    def init_logit_scale(self, init_temperature: float = 0.07, max_logit_scale: float = 100.0) -> None:
        """Create the learnable temperature (a :class:`~dldna.chapter_10.layers.LogitScale`).

        It stores ``log(1 / temperature)``, which keeps the scale positive whatever the
        optimiser does; CLIP starts at a temperature of 0.07 and caps the scale at 100.
        """
        self.logit_scale_module = LogitScale(init_temperature, max_logit_scale)

    @property
    def logit_scale(self) -> nn.Parameter:
        """The stored ``log(1 / temperature)`` (0-d parameter; weight decay never touches it)."""
        module = self.__dict__["_modules"].get("logit_scale_module")
        if module is None:
            raise AttributeError(f"{type(self).__name__} has no logit_scale; call init_logit_scale() in __init__.")
        return module.log_scale

    @property
    def max_logit_scale(self) -> float:
        return self.logit_scale_module.max_scale

    def scale(self) -> Tensor:
        """``1 / temperature``, capped at ``max_logit_scale``."""
        if "logit_scale_module" not in self.__dict__["_modules"]:
            raise AttributeError(f"{type(self).__name__} has no logit_scale; call init_logit_scale() in __init__.")
        return self.logit_scale_module()

    @property
    def temperature(self) -> float:
        """The softmax temperature in use (``1 / scale``); NaN for a model without one."""
        module = self.__dict__["_modules"].get("logit_scale_module")
        return float("nan") if module is None else module.temperature

    def score_all(self, image_rep: Rep, text_rep: Rep) -> Tensor:
        """:meth:`score` over two whole sets, block by block; float32 ``[N_img, N_txt]``."""
        n_img, n_txt = _rep_len(image_rep), _rep_len(text_rep)
        if n_img * n_txt <= self.pairs_per_block:
            return self.score(image_rep, text_rep).float()
        text_block = min(n_txt, max(1, 2 * math.isqrt(self.pairs_per_block)))
        image_block = max(1, self.pairs_per_block // text_block)
        rows = []
        for i in range(0, n_img, image_block):
            images = _rep_map(lambda x: x[i : i + image_block], image_rep)
            cols = [
                self.score(images, _rep_map(lambda x: x[j : j + text_block], text_rep)).float()
                for j in range(0, n_txt, text_block)
            ]
            rows.append(torch.cat(cols, dim=1))
        return torch.cat(rows, dim=0)


# ---------------------------------------------------------------------------- settings

#: Learning-rate multipliers ``f(progress in [0, 1]) -> factor``, usable as ``TrainConfig(lr_schedule=name)``.
LR_SCHEDULES: Registry[Callable[[float], float]] = Registry("learning-rate schedule")
register_schedule = LR_SCHEDULES.register


@register_schedule("constant")
def constant_schedule(progress: float) -> float:
    """The same learning rate throughout (the original chapter's choice)."""
    return 1.0


@register_schedule("cosine")
def cosine_schedule(progress: float) -> float:
    """Half a cosine from the full rate down to zero (CLIP's schedule): large steps while the
    model is far from a solution, small ones at the end, where a constant rate keeps the
    weights jumping around a minimum."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, total_steps: int | None, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step scheduler: linear warm-up, then ``LR_SCHEDULES[schedule]`` over the remaining steps.

    ``total_steps`` may be ``None`` (length unknown, e.g. an iterator) only for "constant".
    """
    shape = LR_SCHEDULES[schedule]
    if total_steps is None and schedule != "constant":
        raise ValueError(f"lr_schedule={schedule!r} needs the number of steps; give train_data a len().")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if total_steps is None:
            return shape(0.0)
        return shape((step - warmup_steps) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainConfig:
    """Hyperparameters of :func:`fit`; ``None`` for the speed options means "on for CUDA"."""

    num_epochs: int = 3
    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 32
    eval_batch_size: int = 128
    ks: tuple[int, ...] = (1, 5, 10)
    #: History column that picks the best checkpoint; "...loss" columns are minimised.
    monitor: str = "mean_recall"
    grad_clip: float | None = None
    #: Learning-rate schedule over all steps (see LR_SCHEDULES): "constant" or "cosine".
    lr_schedule: str = "constant"
    #: Linear warm-up steps at the start (any schedule).
    warmup_steps: int = 0
    seed: int = 0
    progress: bool = True
    checkpoint_path: str | None = None
    mixed_precision: bool | None = None
    channels_last: bool | None = None
    fused_optimizer: bool | None = None
    #: Check the running loss for NaN/inf every this many steps (each check waits for the GPU).
    check_every: int = 20
    #: Also report the original chapter's in-batch metrics on the validation split
    #: (``val_batch_loss``, ``val_batch_acc``: is a caption its image's best match among the
    #: batch?), computed from the training logits ``model.similarity``.
    in_batch_metrics: bool = False

    def __post_init__(self) -> None:
        problems = params.problems(
            {
                **{name: (getattr(self, name), params.positive_int)
                   for name in ("num_epochs", "batch_size", "eval_batch_size", "check_every")},
                **{name: (getattr(self, name), params.non_negative_int) for name in ("warmup_steps", "seed")},
                "lr": (self.lr, params.positive_number),
                "weight_decay": (self.weight_decay, params.non_negative_number),
                "grad_clip": (self.grad_clip, params.optional(params.positive_number, "no clipping")),
                "lr_schedule": (self.lr_schedule, params.choice(*LR_SCHEDULES.names())),
            }
        )  # fmt: skip
        if problems:
            raise ValueError("Invalid TrainConfig: " + "; ".join(problems) + ".")
        self.ks = tuple(int(k) for k in self.ks)


@dataclass(frozen=True)
class Speedups:
    """The GPU-only speed settings, resolved for one device."""

    autocast_dtype: torch.dtype | None = None  # bf16 or fp16 autocast when set
    channels_last: bool = False
    fused_optimizer: bool = False

    @classmethod
    def for_device(
        cls,
        device: torch.device,
        mixed_precision: bool | None = None,
        channels_last: bool | None = None,
        fused_optimizer: bool | None = None,
    ) -> Speedups:
        """``None`` means: on for CUDA, off elsewhere.

        Mixed precision is bf16 where the GPU has it (compute capability 8.0 and newer:
        A100, H100, L4...), else fp16 (a T4 in Colab) with a gradient scaler, since fp16's
        small range lets tiny gradients underflow to zero; bf16 needs no scaling.
        """
        cuda = device.type == "cuda"
        amp = cuda if mixed_precision is None else mixed_precision
        if amp and not cuda:
            raise ValueError("mixed_precision=True needs a CUDA device; leave it None to decide automatically.")
        bf16 = cuda and torch.cuda.is_bf16_supported(including_emulation=False)
        return cls(
            autocast_dtype=(torch.bfloat16 if bf16 else torch.float16) if amp else None,
            channels_last=cuda if channels_last is None else channels_last,
            fused_optimizer=cuda if fused_optimizer is None else fused_optimizer,
        )

    def autocast(self, device: torch.device) -> AbstractContextManager:
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def images(self, images: Tensor) -> Tensor:
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """A gradient scaler that is active for fp16 only (a no-op otherwise)."""
        return torch.amp.GradScaler(device.type, enabled=self.autocast_dtype == torch.float16)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.01, fused: bool = False) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only.

    Biases, normalisation parameters and the temperature are vectors or scalars; decaying
    them towards zero only hurts (a LayerNorm gain of 0 erases its input).
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


# ------------------------------------------------------------------------------ steps


def trim_padding(input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop the trailing columns that are padding in every row: ``[B, L] -> [B, L']``.

    Captions are padded to a fixed ``max_length`` once; most batches need fewer columns,
    and every model here masks padding, so the real tokens' outputs do not change.
    """
    real = attention_mask.bool().any(dim=0).nonzero()
    length = int(real.max()) + 1 if len(real) else 1
    return input_ids[:, :length], attention_mask[:, :length]


def train_step(
    model: RetrievalModel,
    optimizer: torch.optim.Optimizer,
    batch: tuple[Tensor, Tensor, Tensor],
    device: torch.device,
    speed: Speedups,
    grad_clip: float | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Tensor:
    """One optimisation step on ``(images, input_ids, attention_mask)``; returns the detached loss.

    The loss is returned as a tensor so that the caller decides when to wait for the GPU.
    ``scaler`` (fp16 only) scales the loss before the backward pass and unscales the
    gradients before clipping.
    """
    images, input_ids, attention_mask = (t.to(device, non_blocking=True) for t in batch)
    input_ids, attention_mask = trim_padding(input_ids, attention_mask)
    with speed.autocast(device):
        logits = model.similarity(speed.images(images), input_ids, attention_mask)  # [B, B]
        loss = contrastive_loss(logits.float())
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return loss.detach()


def _raise_diverged(epoch: int, step: int, value: float, lr: float, history: list[dict[str, Any]]) -> None:
    where = f"epoch {epoch}, step {step}: training loss {value}"
    raise TrainingDivergedError(
        f"The training loss became {value} in epoch {epoch} (by step {step}). The weights are no "
        f"longer usable. Lower the learning rate (now {lr:g}), set TrainConfig.grad_clip (e.g. 1.0), "
        "or check the inputs for NaN.",
        history=history,
        where=where,
    )


def _train_batches(
    train_data: CachedSplit | Iterable, batch_size: int, device: torch.device, generator: torch.Generator
) -> Iterator:
    """One epoch of batches; a batch of one pair is skipped (its contrastive loss has no negatives)."""
    if isinstance(train_data, CachedSplit):  # one caption per image per epoch
        batches = train_data.batches(batch_size, device, generator, shuffle=True)
    elif isinstance(train_data, Iterable):
        batches = iter(train_data)
    else:
        raise TypeError(
        f"train_data must be a CachedSplit (see cached_splits) or an iterable of "
            f"(images, input_ids, attention_mask) batches such as a DataLoader; got {type(train_data).__name__}."
        )
    return (batch for batch in batches if batch[0].shape[0] >= 2)


def steps_per_epoch(train_data: CachedSplit | Iterable, batch_size: int) -> int | None:
    """Optimisation steps one epoch of ``fit`` takes (``None``: an iterable of unknown length)."""
    if isinstance(train_data, CachedSplit):
        return train_data.num_images // batch_size + int(train_data.num_images % batch_size >= 2)
    return len(train_data) if hasattr(train_data, "__len__") else None


def check_eval_split(split: Any, name: str) -> CachedSplit:
    if not isinstance(split, CachedSplit):
        raise TypeError(
            f"{name} must be a CachedSplit: Recall@K ranks every image of the split against all "
            f"of its captions, which a DataLoader of pairs cannot provide. Build one with "
            f"dldna.chapter_10.training.cached_splits(...) or dldna.data.cache.cached_split(dataset, "
            f"image_size); got {type(split).__name__}."
        )
    return split


# ------------------------------------------------------------------------- evaluation


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Switch ``model`` to eval mode (BatchNorm running statistics, no dropout) and back."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def encode_split(
    model: RetrievalModel,
    split: CachedSplit,
    device: torch.device | str | None = None,
    batch_size: int = 128,
    speed: Speedups | None = None,
) -> tuple[Rep, Rep]:
    """Embed every image and every caption of ``split`` once (eval mode is the caller's)."""
    device = next(model.parameters()).device if device is None else torch.device(device)
    speed = speed or Speedups.for_device(device)
    image_parts, text_parts = [], []
    with speed.autocast(device):
        for start in range(0, split.num_images, batch_size):
            rows = np.arange(start, min(start + batch_size, split.num_images))
            image_parts.append(model.embed_images(speed.images(split.image_batch(rows, device))))
        all_ids, all_mask = trim_padding(split.input_ids, split.attention_mask)  # one length for the split
        for start in range(0, len(split), batch_size):
            ids = all_ids[start : start + batch_size].to(device)
            mask = all_mask[start : start + batch_size].to(device)
            text_parts.append(model.embed_texts(ids, mask))
    return _rep_cat(image_parts), _rep_cat(text_parts)


@torch.no_grad()
def retrieval_scores(
    model: RetrievalModel,
    split: CachedSplit,
    device: torch.device | str | None = None,
    batch_size: int = 128,
    speed: Speedups | None = None,
) -> Tensor:
    """Scores ``[N_img, N_txt]`` (float32, on the CPU) of every image against every caption."""
    split = check_eval_split(split, "split")
    device = next(model.parameters()).device if device is None else torch.device(device)
    speed = speed or Speedups.for_device(device)
    with eval_mode(model):
        image_rep, text_rep = encode_split(model, split, device, batch_size, speed)
        with speed.autocast(device):
            scores = model.score_all(image_rep, text_rep)
    return scores.float().cpu()


def batch_loss_from_scores(
    scores: Tensor, image_index: Tensor, batch_size: int, generator: torch.Generator
) -> float:
    """The contrastive loss over batches of one caption per image, read off a full score matrix.

    In eval mode an image's and a caption's representations do not depend on the rest
    of the batch, so batch ``b``'s logits are just a sub-matrix of ``scores``; no second
    pass over the split is needed. A fixed ``generator`` makes it the same batches every
    epoch, so validation losses are comparable.
    """
    order = torch.argsort(torch.rand(len(image_index), generator=generator))
    first: dict[int, int] = {}
    for caption in order.tolist():
        first.setdefault(int(image_index[caption]), caption)
    captions = torch.tensor(list(first.values()), dtype=torch.long)
    losses, weights = [], []
    for start in range(0, len(captions), batch_size):
        cap = captions[start : start + batch_size]
        if len(cap) < 2:  # a batch of one has no negatives
            continue
        block = scores[image_index[cap]][:, cap]  # [b, b], pairs on the diagonal
        losses.append(contrastive_loss(block).item())
        weights.append(len(cap))
    return float(np.average(losses, weights=weights)) if losses else float("nan")


#: Seed of the fixed caption choice and batch order of :func:`in_batch_metrics`.
IN_BATCH_SEED = 12345


@torch.no_grad()
def in_batch_metrics(
    model: RetrievalModel,
    split: CachedSplit,
    batch_size: int,
    device: torch.device | str | None = None,
    speed: Speedups | None = None,
) -> dict[str, float]:
    """The original chapter's validation metrics, from the training logits of each batch.

    ``batch_loss``: the contrastive loss of ``model.similarity`` on batches of one caption
    per image (a fixed choice and order); ``batch_acc``: how often an image's own caption
    scores highest among the batch's. Unlike Recall@K over a whole split, these use the
    logits the model trains on, so a model whose training logits leak the pairing (the
    ablation's faithful mode, erratum 3) can score perfectly here while retrieval fails.
    """
    split = check_eval_split(split, "split")
    device = next(model.parameters()).device if device is None else torch.device(device)
    speed = speed or Speedups.for_device(device)
    generator = torch.Generator().manual_seed(IN_BATCH_SEED)
    total_loss = total_hits = count = 0.0
    with eval_mode(model):
        for images, input_ids, attention_mask in split.batches(batch_size, device, generator, shuffle=True):
            if images.shape[0] < 2:
                continue
            input_ids, attention_mask = trim_padding(input_ids, attention_mask)
            with speed.autocast(device):
                logits = model.similarity(speed.images(images), input_ids, attention_mask).float()  # [B, B]
            b = logits.shape[0]
            total_loss += float(contrastive_loss(logits)) * b
            total_hits += float((logits.argmax(dim=1) == torch.arange(b, device=logits.device)).sum())
            count += b
    if count == 0:
        raise ValueError("The validation split has fewer than 2 images; give it more data.")
    return {"batch_loss": total_loss / count, "batch_acc": total_hits / count}


def evaluate(
    model: RetrievalModel,
    split: CachedSplit,
    device: torch.device | str | None = None,
    batch_size: int = 32,
    eval_batch_size: int = 128,
    ks: Sequence[int] = (1, 5, 10),
    seed: int = 0,
    speed: Speedups | None = None,
) -> dict[str, float]:
    """Held-out contrastive loss (``loss``) and Recall@K in both directions on ``split``."""
    scores = retrieval_scores(model, split, device, eval_batch_size, speed)  # [N_img, N_txt]
    generator = torch.Generator().manual_seed(seed)
    loss = batch_loss_from_scores(scores, split.image_index, batch_size, generator)
    return {"loss": loss, **recall_at_k_from_scores(scores, split.image_index, ks)}


# ------------------------------------------------------------------------ checkpoints


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    epoch: int,
    metrics: dict[str, float] | None = None,
    train_config: TrainConfig | None = None,
) -> Path:
    """Write weights, model class and config, epoch and metrics (see :mod:`dldna.checkpoint`).

    The write is atomic: a run killed while saving leaves the previous best checkpoint intact.
    """
    return checkpoint.save(
        path, CHECKPOINT_FORMAT, model, model_class=type(model).__name__,
        model_config=getattr(model, "config", None), train_config=train_config, epoch=int(epoch),
        metrics=metrics or {},
    )  # fmt: skip


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module) -> dict[str, Any]:
    """Load a :func:`save_checkpoint` file into ``model`` strictly; return the rest of it.

    ``weights_only=True`` refuses arbitrary pickled code; ``strict=True`` refuses a
    checkpoint of another architecture instead of silently leaving layers random.
    """
    payload = checkpoint.read(path, CHECKPOINT_FORMAT, required=("model_class",))
    expected = type(model).__name__
    if payload["model_class"] != expected:
        raise checkpoint.CheckpointError(f"{path} holds a {payload['model_class']!r} checkpoint, not a {expected!r}.")
    checkpoint.load_into(model, payload, path)
    return {k: v for k, v in payload.items() if k != "state_dict"}


# ------------------------------------------------------------------------------- loop


def _improved(value: float, best: float | None, monitor: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if monitor.endswith("loss") else value > best


def fit(
    model: RetrievalModel,
    train_data: CachedSplit | Iterable,
    val_split: CachedSplit,
    config: TrainConfig | None = None,
    device: torch.device | str | None = None,
    expected_time: ExpectedRunTime | None = None,
) -> pd.DataFrame:
    """Train ``model`` and evaluate it after every epoch; return one history row per epoch.

    ``train_data`` is a :class:`~dldna.data.cache.CachedSplit` (the fast path: each epoch
    shows every training image once, with a random one of its captions, so no batch
    holds two captions of one image) or any iterable of ``(images, input_ids,
    attention_mask)`` batches, e.g. a ``DataLoader`` over
    :class:`~dldna.data.flickr8k.Flickr8kDataset`. ``val_split`` must be a ``CachedSplit``.
    ``device=None`` trains where the model already is.

    Columns: ``epoch, train_loss, val_loss, i2t_R@K..., t2i_R@K..., mean_recall,
    temperature, seconds, pairs_per_s``. When ``config.checkpoint_path`` is set, the
    epoch with the best ``config.monitor`` is saved there.

    The first steps are timed and the expected training time is announced
    (:class:`~dldna.timing.ExpectedRunTime`); pass ``expected_time`` to count these steps
    into a larger run's announcement instead (the ablation's versions share one).
    """
    if not isinstance(model, RetrievalModel):
        raise TypeError(f"model must be a RetrievalModel (embed_images/embed_texts/score); got {type(model).__name__}.")
    config = config or TrainConfig()
    val_split = check_eval_split(val_split, "val_split")
    device = next(model.parameters()).device if device is None else select_device(device)
    speed = Speedups.for_device(device, config.mixed_precision, config.channels_last, config.fused_optimizer)
    model.to(device)
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config.lr, config.weight_decay, fused=speed.fused_optimizer)
    scaler = speed.grad_scaler(device)
    n_steps_epoch = steps_per_epoch(train_data, config.batch_size)  # None: unknown
    scheduler = make_scheduler(
        optimizer, config.lr_schedule, n_steps_epoch and n_steps_epoch * config.num_epochs, config.warmup_steps
    )
    generator = torch.Generator().manual_seed(config.seed)
    if expected_time is None and n_steps_epoch:
        expected_time = ExpectedRunTime(n_steps_epoch * config.num_epochs, "training", device)

    history: list[dict[str, Any]] = []
    best: float | None = None
    for epoch in range(1, config.num_epochs + 1):
        model.train()
        started = time.perf_counter()
        batches = _train_batches(train_data, config.batch_size, device, generator)
        bar = tqdm(
            batches, total=n_steps_epoch, desc=f"Epoch {epoch}/{config.num_epochs}", disable=not config.progress
        )
        running = torch.zeros((), device=device)
        n_steps = n_pairs = 0
        for batch in bar:
            running += train_step(model, optimizer, batch, device, speed, config.grad_clip, scaler)
            scheduler.step()
            if expected_time is not None:
                expected_time.tick()
            n_steps += 1
            n_pairs += batch[0].shape[0]
            if n_steps % config.check_every == 0:
                mean = running.item() / n_steps
                if not math.isfinite(mean):
                    _raise_diverged(epoch, n_steps, mean, config.lr, history)
                bar.set_postfix(loss=f"{mean:.4f}")
        bar.close()
        if n_steps == 0:
            raise ValueError("The training data produced no batches; is the training split empty?")
        train_loss = running.item() / n_steps
        if not math.isfinite(train_loss):
            _raise_diverged(epoch, n_steps, train_loss, config.lr, history)
        seconds = time.perf_counter() - started

        metrics = evaluate(
            model, val_split, device, config.batch_size, config.eval_batch_size, config.ks, config.seed, speed
        )
        if config.in_batch_metrics:
            batch = in_batch_metrics(model, val_split, config.batch_size, device, speed)
            metrics.update(val_batch_loss=batch["batch_loss"], val_batch_acc=batch["batch_acc"])
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": metrics.pop("loss"),
            **metrics,
            "temperature": model.temperature,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "pairs_per_s": n_pairs / seconds,
        }
        history.append(row)
        if config.monitor not in row:
            raise KeyError(f"TrainConfig.monitor={config.monitor!r} is not a history column; choose from {list(row)}.")
        logger.info(
            "Epoch %d/%d: train loss %.4f, val loss %.4f, R@1 i2t %.3f t2i %.3f, %.0f pairs/s",
            epoch, config.num_epochs, train_loss, row["val_loss"], row.get("i2t_R@1", float("nan")),
            row.get("t2i_R@1", float("nan")), row["pairs_per_s"],
        )  # fmt: skip
        if _improved(row[config.monitor], best, config.monitor):
            best = row[config.monitor]
            if config.checkpoint_path:
                save_checkpoint(config.checkpoint_path, model, epoch, row, config)
                logger.info("Epoch %d: saved the best model (%s = %.4f) to %s", epoch, config.monitor, best,
                            config.checkpoint_path)
    return pd.DataFrame(history)


def train_retrieval_model(
    model: RetrievalModel,
    train_data: CachedSplit | Iterable,
    val_data: CachedSplit,
    num_epochs: int = 3,
    lr: float = 1e-4,
    device: torch.device | str | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **config: Any,
) -> pd.DataFrame:
    """The chapter's ``train_*_embedding(model, train, val, num_epochs, lr, ...)`` signature over :func:`fit`.

    Extra keyword arguments are :class:`TrainConfig` fields (``batch_size``, ``seed``...).
    """
    unknown = set(config) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(
            f"Unknown training options {sorted(unknown)}; TrainConfig has {sorted(TrainConfig.__dataclass_fields__)}."
        )
    cfg = TrainConfig(
        num_epochs=num_epochs, lr=lr, checkpoint_path=str(checkpoint_path) if checkpoint_path else None, **config
    )
    return fit(model, train_data, val_data, cfg, device)


# ------------------------------------------------------------------------------ data


def default_image_size(runtime: Runtime) -> int:
    """The image side the towers train at for this run (64 px smoke CNN, 224 px ResNet)."""
    return profile_sizes(runtime).image_size


def cached_splits(
    data: Any,
    tokenizer: Any,
    image_size: int,
    seed: int = 0,
    max_length: int = 32,
    names: Sequence[str] = ("train", "val", "test"),
) -> dict[str, CachedSplit]:
    """Tokenised, pre-resized :class:`CachedSplit` s of a :class:`~dldna.data.prepare.CaptionData`.

    Uses the data's saved image-level split for ``seed``, so every model of a comparison
    trains and is evaluated on the same images (erratum 2).
    """
    split = data.split(seed)
    result = {}
    for name in names:
        if name not in split:
            raise KeyError(f"Unknown split {name!r}; known: {sorted(split)}.")
        if not split[name]:
            raise ValueError(f"The {name!r} split of {data.root} is empty; use more images.")
        dataset = data.dataset(tokenizer=tokenizer, max_length=max_length, images=split[name])
        result[name] = cached_split(dataset, image_size)
    return result
