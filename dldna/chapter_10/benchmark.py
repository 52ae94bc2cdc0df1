"""Naive versus fast training input pipeline for the dual encoder, side by side in one process.

``python -m dldna.chapter_10.benchmark [--steps N] [--batch-size B] [--profile smoke|full] [--json PATH]``

Both paths train the same :class:`~dldna.chapter_10.multimodal_embedding.MultimodalEmbedding`
(same configuration, same initial weights) for the same number of steps with the same
:func:`~dldna.chapter_10.training.train_step`; only the input pipeline and the numeric
settings differ:

* **naive** (the original chapter's loop): a ``DataLoader`` over
  :class:`~dldna.data.flickr8k.Flickr8kDataset` whose torchvision transform opens,
  decodes, resizes and normalises one JPEG per caption in every epoch, in float32;
* **fast**: images decoded and resized once into a ``uint8`` array
  (:func:`~dldna.data.cache.cached_split`), one fancy-index per batch, normalised on the
  device; on CUDA also bf16 autocast, channels-last images and the fused AdamW kernel.

It reports pairs per second for each, their ratio, the peak GPU memory of each path and
the device name. Building the cache is a one-off cost and is reported separately.
``full`` with ``DLDNA_OFFLINE=1`` measures ResNet-18 + BERT-base with random weights on
synthetic images at Flickr8k scale, so a GPU machine without internet can run it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision import transforms

from dldna.atomic import atomic_write_json
from dldna.chapter_10.multimodal_embedding import MultimodalEmbedding, build_multimodal_embedding
from dldna.chapter_10.training import Speedups, cached_splits, default_image_size, make_optimizer, train_step
from dldna.data.cache import IMAGENET_MEAN, IMAGENET_STD, loader_settings
from dldna.data.flickr8k import read_captions
from dldna.data.prepare import CaptionData, prepare_caption_data
from dldna.loaders import model_source
from dldna.runtime import Runtime, setup

logger = logging.getLogger(__name__)


@dataclass
class PathResult:
    """Throughput of one input pipeline."""

    name: str
    description: str
    pairs_per_s: float
    steps: int
    pairs: int
    seconds: float
    peak_memory_mb: float | None  # CUDA only
    mixed_precision: bool
    channels_last: bool
    fused_optimizer: bool
    final_loss: float


def naive_loader(
    data: CaptionData,
    tokenizer: Any,
    image_names: Sequence[str],
    image_size: int,
    batch_size: int,
    device: torch.device,
    workers: int | None = None,
    seed: int = 0,
) -> DataLoader:
    """The original pipeline: every item opens, decodes, resizes and normalises its JPEG."""
    transform = transforms.Compose([
        transforms.Resize((image_size, image_size)),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip
    dataset = data.dataset(transform=transform, tokenizer=tokenizer, images=image_names)
    settings = loader_settings(device)
    if workers is not None:
        settings["num_workers"] = workers
    if settings["num_workers"] == 0:
        settings = {"num_workers": 0, "pin_memory": settings["pin_memory"]}
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator, **settings)


def caption_data(
    runtime: Runtime,
    data_dir: str | os.PathLike[str] | None,
    n_images: int | None = None,
    source_size: int | None = None,
) -> CaptionData:
    """An existing data folder as it is (when no size is asked for), else the profile's data."""
    if data_dir is not None and n_images is None and source_size is None:
        root = Path(data_dir)
        if (root / "captions.txt").is_file():
            return CaptionData.at(root, synthetic=(root / "dataset.json").is_file())
    return prepare_caption_data(runtime, data_dir, n_images, **({"image_size": source_size} if source_size else {}))


def _forever(epoch: Callable[[], Iterator]) -> Iterator:
    """Chain epochs without end: a fixed number of steps may span several epochs."""
    return itertools.chain.from_iterable(epoch() for _ in itertools.count())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_path(
    name: str,
    description: str,
    model: MultimodalEmbedding,
    initial_state: dict[str, torch.Tensor],
    batches: Iterator,
    steps: int,
    warmup: int,
    device: torch.device,
    speed: Speedups,
    lr: float,
) -> PathResult:
    """Train ``steps`` steps from ``initial_state`` (after ``warmup`` untimed ones) and time them.

    Fetching each batch is inside the timed loop: the input pipeline is what differs.
    """
    model.load_state_dict(initial_state)
    model.to(memory_format=torch.channels_last if speed.channels_last else torch.contiguous_format)
    model.train()
    optimizer = make_optimizer(model, lr, fused=speed.fused_optimizer)
    for _ in range(warmup):
        train_step(model, optimizer, next(batches), device, speed)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    pairs, total = 0, torch.zeros((), device=device)
    started = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        total += train_step(model, optimizer, batch, device, speed)
        pairs += batch[0].shape[0]
    _sync(device)
    seconds = time.perf_counter() - started
    final_loss = total.item() / steps
    if not torch.isfinite(torch.tensor(final_loss)):
        raise FloatingPointError(f"The {name} path's loss became {final_loss}; the timing is not trustworthy.")
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return PathResult(
        name=name, description=description, pairs_per_s=pairs / seconds, steps=steps, pairs=pairs,
        seconds=seconds, peak_memory_mb=peak, mixed_precision=speed.autocast_dtype is not None,
        channels_last=speed.channels_last, fused_optimizer=speed.fused_optimizer, final_loss=final_loss,
    )  # fmt: skip


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def run_benchmark(
    runtime: Runtime,
    steps: int = 50,
    batch_size: int = 32,
    warmup: int = 3,
    data_dir: str | os.PathLike[str] | None = None,
    n_images: int | None = None,
    source_size: int | None = None,
    image_size: int | None = None,
    workers: int | None = None,
    lr: float = 1e-4,
) -> dict[str, Any]:
    """Time the naive and the fast path on the run's device; return a JSON-ready dict.

    ``source_size`` is the side of generated synthetic JPEGs (the naive path decodes
    them every time; real Flickr8k photos are about 500 x 375), ``image_size`` the side
    the model sees (default 64 in smoke, 224 in full).
    """
    if steps < 1 or batch_size < 2 or warmup < 0:
        raise ValueError(f"Need steps >= 1, batch_size >= 2 and warmup >= 0; got {steps}, {batch_size}, {warmup}.")
    device = runtime.device
    image_size = image_size or default_image_size(runtime)
    started = time.perf_counter()
    data = caption_data(runtime, data_dir, n_images, source_size)
    data_seconds = time.perf_counter() - started
    model, tokenizer = build_multimodal_embedding(runtime, texts=[c for _, c in read_captions(data.caption_file)])
    initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train_names = data.split(runtime.seed)["train"]
    if len(train_names) < batch_size:
        raise ValueError(f"The training split has {len(train_names)} images, fewer than one batch of {batch_size}.")

    loader = naive_loader(data, tokenizer, train_names, image_size, batch_size, device, workers, runtime.seed)
    naive = time_path(
        "naive", "DataLoader, JPEG decode + resize per item, float32", model, initial_state,
        _forever(lambda: iter(loader)), steps, warmup, device, Speedups(), lr,
    )  # fmt: skip
    del loader

    started = time.perf_counter()
    train = cached_splits(data, tokenizer, image_size, seed=runtime.seed, names=("train",))["train"]
    cache_seconds = time.perf_counter() - started
    speed = Speedups.for_device(device)
    generator = torch.Generator().manual_seed(runtime.seed)
    settings = ", ".join(
        ["cached uint8 images"]
        + ([f"{str(speed.autocast_dtype).removeprefix('torch.')} autocast"] if speed.autocast_dtype else [])
        + (["channels-last"] if speed.channels_last else [])
        + (["fused AdamW"] if speed.fused_optimizer else [])
    )
    fast = time_path(
        "fast", settings, model, initial_state,
        _forever(lambda: train.batches(batch_size, device, generator, shuffle=True)),
        steps, warmup, device, speed, lr,
    )  # fmt: skip
    return {
        "device": str(device),
        "device_name": device_name(device),
        "models": model_source("bert", runtime),
        "synthetic": data.synthetic,
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "image_size": image_size,
        "train_images": len(train_names),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data_seconds": data_seconds,
        "cache_seconds": cache_seconds,
        "naive": asdict(naive),
        "fast": asdict(fast),
        "speedup": fast.pairs_per_s / naive.pairs_per_s,
        "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
    }


def summary(result: dict[str, Any]) -> str:
    """A few human-readable lines for the result of :func:`run_benchmark`."""
    lines = [
        f"device: {result['device_name']} ({result['device']}), text tower: {result['models']}, "
        f"{result['parameters'] / 1e6:.1f} M parameters, "
        f"batch {result['batch_size']}, {result['steps']} timed steps at {result['image_size']} px",
    ]
    for key in ("naive", "fast"):
        path = result[key]
        memory = f", peak GPU memory {path['peak_memory_mb']:.0f} MB" if path["peak_memory_mb"] is not None else ""
        lines.append(f"{key:>5}: {path['pairs_per_s']:8.1f} pairs/s  ({path['description']}){memory}")
    lines.append(
        f"speed-up fast/naive: {result['speedup']:.2f}x  (one-off cache build {result['cache_seconds']:.1f} s)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m dldna.chapter_10.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per path (default 50)")
    parser.add_argument("--batch-size", type=int, default=32, help="image-caption pairs per step (default 32)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (default 3)")
    parser.add_argument("--profile", default=None, choices=["smoke", "full"],
                        help="default: $DLDNA_PROFILE, else full")
    parser.add_argument("--device", default=None, help="cuda, cpu... (default: CUDA if available)")
    parser.add_argument("--data-dir", default=None, help="caption data folder (synthetic data is generated there)")
    parser.add_argument("--images", type=int, default=None, help="synthetic images to generate (default per profile)")
    parser.add_argument("--source-size", type=int, default=None, help="side of the generated JPEGs in pixels")
    parser.add_argument("--image-size", type=int, default=None, help="side the model sees (default 64 smoke, 224 full)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers of the naive path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # The tokenizer runs before the DataLoader forks its workers; its thread pool must not be inherited.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    runtime = setup(args.profile, args.device, args.seed)
    result = run_benchmark(
        runtime, steps=args.steps, batch_size=args.batch_size, warmup=args.warmup, data_dir=args.data_dir,
        n_images=args.images, source_size=args.source_size, image_size=args.image_size, workers=args.workers,
    )  # fmt: skip
    logger.info(summary(result))
    if args.json:
        path = atomic_write_json(args.json, result, indent=2)
        logger.info("wrote %s", path)
    return result


if __name__ == "__main__":
    main()
