"""The fast data path: decode and resize every image once, tokenise every caption once.

The naive loop (the original chapter's) opens, decodes, resizes and normalises a JPEG for
every caption in every epoch, so each image is decoded five times per epoch, and the
workers that do it compete with the model for the CPU. Here a split is turned once into

* ``images``: a ``uint8`` array ``[N_img, H, W, 3]`` saved as ``.npy`` beside the data
  and memory-mapped on later runs (8,091 Flickr8k images at 224 px take 1.2 GB);
* ``input_ids`` / ``attention_mask``: the tokenised captions ``[N_cap, L]``;
* ``image_index``: for each caption, the row of its image.

A batch is then one fancy-index into the array, a conversion to float and a
normalisation, done on the training device.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dldna.atomic import atomic_write, atomic_write_json

from .flickr8k import Flickr8kDataset, derived_folders, save_derived

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class CachedSplit:
    """One split held as arrays: images once, captions tokenised once."""

    images: np.ndarray  # uint8 [N_img, H, W, 3], often a read-only memmap
    image_names: list[str]
    captions: list[str]
    input_ids: torch.Tensor  # [N_cap, L]
    attention_mask: torch.Tensor  # [N_cap, L]
    image_index: torch.Tensor  # [N_cap], row of each caption's image

    @property
    def num_images(self) -> int:
        return len(self.image_names)

    def __len__(self) -> int:
        return len(self.captions)

    def image_batch(self, rows: torch.Tensor | np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """Normalised float images ``[B, 3, H, W]`` for image rows ``rows``."""
        rows = np.asarray(rows)
        pixels = torch.from_numpy(np.ascontiguousarray(self.images[rows])).to(device, non_blocking=True)
        return normalize_uint8(pixels)

    def one_caption_per_image(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Caption indices ``[N_img]``: one random caption of every image, in random order.

        An epoch over images rather than captions keeps two captions of the same image out
        of one contrastive batch, where one would be a false negative for the other.
        """
        order = torch.argsort(torch.rand(len(self.captions), generator=generator))
        first = {}
        for caption in order.tolist():
            first.setdefault(int(self.image_index[caption]), caption)
        picked = torch.tensor(list(first.values()), dtype=torch.long)
        return picked[torch.randperm(len(picked), generator=generator)]

    def batches(
        self,
        batch_size: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        shuffle: bool = True,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(images [B,3,H,W], input_ids [B,L], attention_mask [B,L])`` for one epoch.

        With ``shuffle`` the epoch visits each image once with a random caption; without,
        it walks every caption in order (for evaluation).
        """
        captions = self.one_caption_per_image(generator) if shuffle else torch.arange(len(self.captions))
        for start in range(0, len(captions), batch_size):
            idx = captions[start : start + batch_size]
            images = self.image_batch(self.image_index[idx].numpy(), device)
            yield images, self.input_ids[idx].to(device), self.attention_mask[idx].to(device)


def normalize_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """``uint8 [B, H, W, 3]`` to ImageNet-normalised ``float [B, 3, H, W]``."""
    x = pixels.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def _fingerprint(image_dir: Path, names: Sequence[str], size: int) -> str:
    digest = hashlib.sha256(f"{image_dir.resolve()}|{size}|".encode())
    for name in names:
        digest.update(name.encode())
        digest.update(str(os.stat(image_dir / name).st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def _load_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The memory-mapped cache at ``path``; ``None`` when absent, or damaged and removed.

    The cache is derived data: a file cut short by a full disk or a killed copy ("mmap
    length is greater than file size", ``EOFError``), or one of the wrong shape, is
    reported by name, deleted, and rebuilt by the caller.
    """
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        if array.shape == shape and array.dtype == np.uint8:
            return array
        problem = f"it holds {array.dtype} {array.shape}, expected uint8 {shape}"
        del array
    logger.warning("Image cache %s is damaged (%s); deleting and rebuilding it.", path, problem)
    try:
        path.unlink()
    except OSError as exc:  # read-only data: the rebuilt cache goes to the fallback folder
        logger.info("Cannot delete %s (%s).", path, exc)
    return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a name
        np.save(f, array)


def cache_images(dataset: Flickr8kDataset, size: int, cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Decode and resize ``dataset``'s images once into ``uint8 [N, size, size, 3]``.

    The array is written to ``cache_dir`` (default: ``.cache`` beside the data, or, when
    the data folder cannot be written, a folder under ``$DLDNA_CACHE_DIR``: see
    :func:`~dldna.data.flickr8k.derived_folders`) under a name derived from the image
    set, the files' timestamps and the size, and memory-mapped on later calls. A damaged
    cache file is named in a warning and rebuilt.
    """
    data_root = dataset.caption_file.parent
    if cache_dir is not None:
        folders: tuple[Path, ...] = (Path(cache_dir),)
    else:
        folders = derived_folders(data_root, "image-cache", data_root / ".cache")
    key = _fingerprint(dataset.image_dir, dataset.image_names, size)
    file_name = f"images-{size}px-{key}.npy"
    shape = (len(dataset.image_names), size, size, 3)
    for folder in folders:
        cached = _load_cached(folder / file_name, shape)
        if cached is not None:
            return cached
    array = np.empty(shape, dtype=np.uint8)
    for row, name in enumerate(dataset.image_names):
        image = dataset.load_image(name).resize((size, size), Image.Resampling.BILINEAR)
        array[row] = np.asarray(image, dtype=np.uint8)
    path = save_derived(file_name, folders, lambda p: atomic_write(p, lambda tmp: _save_npy(tmp, array)))
    atomic_write_json(
        path.with_suffix(".json"), {"images": len(array), "size": size, "source": str(dataset.image_dir)}
    )
    logger.info("Cached %d images at %d px in %s", len(array), size, path)
    return np.load(path, mmap_mode="r")


def cached_split(
    dataset: Flickr8kDataset, image_size: int, cache_dir: str | os.PathLike[str] | None = None
) -> CachedSplit:
    """Turn a tokenised :class:`Flickr8kDataset` (one split) into a :class:`CachedSplit`."""
    if dataset.input_ids is None or dataset.attention_mask is None:
        raise ValueError("cached_split needs a Flickr8kDataset built with a tokenizer")
    return CachedSplit(
        images=cache_images(dataset, image_size, cache_dir),
        image_names=list(dataset.image_names),
        captions=[caption for _, caption in dataset.pairs],
        input_ids=dataset.input_ids,
        attention_mask=dataset.attention_mask,
        image_index=torch.tensor(dataset.image_index, dtype=torch.long),
    )


def loader_settings(device: torch.device | str) -> dict:
    """``DataLoader`` keyword arguments for the naive per-item path.

    Workers decode in parallel with training; pinned memory speeds host-to-GPU copies.
    """
    workers = max(1, min(4, (os.cpu_count() or 2) - 1))
    return {
        "num_workers": workers,
        "pin_memory": torch.device(device).type == "cuda",
        "persistent_workers": True,
        "prefetch_factor": 4,
    }
