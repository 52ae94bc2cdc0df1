"""CIFAR-10 for the ViT training example (section 10.5), and an offline stand-in.

=====================  ================================================  =================
profile                data                                              default folder
=====================  ================================================  =================
``full``               real CIFAR-10 (torchvision; a local copy, else    data/cifar10
                       downloaded once)
``full`` + synthetic   synthetic 10-class shapes, 50,000 / 10,000        (rendered lazily)
``smoke``              synthetic 10-class shapes, 2,000 / 500            (rendered lazily)
=====================  ================================================  =================

Both kinds return ``(image [3, S, S] float tensor, label int)`` items and have the
attributes ``classes`` (ten names) and ``targets`` (one label per item), like
``torchvision.datasets.CIFAR10``, so the training loop cannot tell them apart.

Why shapes? A ViT must learn *what* an object is regardless of *where* it is, how big it
is and what lies behind it. Each synthetic class is a colour x shape combination
("red star", "blue square", ...) drawn with :func:`dldna.data.shapes.render_scene` at a
random position and size, on a random background and texture, with a jittered shade: the
nuisance factors vary, the class does not. Colour alone separates only two groups of
five, so a model has to read the outline to get far above 50% accuracy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms
from torchvision.datasets.cifar import CIFAR10 as _TorchvisionCIFAR10
from torchvision.datasets.utils import check_integrity, extract_archive

from dldna import runtime as runtime_module
from dldna.runtime import Runtime

from . import shapes
from .flickr8k import cache_dir
from .prepare import data_home

logger = logging.getLogger(__name__)

CIFAR10_HOST = "www.cs.toronto.edu"
#: CIFAR-10 normalisation of the original chapter: every channel to [-1, 1].
CIFAR_MEAN = (0.5, 0.5, 0.5)
CIFAR_STD = (0.5, 0.5, 0.5)

SYNTHETIC_COLOURS: tuple[str, ...] = ("red", "blue")
SYNTHETIC_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
#: The ten synthetic classes, "red circle" ... "blue cross" (label = index in this tuple).
SYNTHETIC_CLASSES: tuple[str, ...] = tuple(f"{c} {s}" for c in SYNTHETIC_COLOURS for s in SYNTHETIC_SHAPES)
#: (train, test) sizes of the synthetic stand-in: small for smoke, CIFAR-10's for full.
SYNTHETIC_SIZES: dict[str, tuple[int, int]] = {"smoke": (2_000, 500), "full": (50_000, 10_000)}

_RADIUS_RANGE = (0.22, 0.38)  # object radius as a fraction of the side: legible even at 32 px
_MARGIN = 0.02
_STREAMS = {True: 2, False: 3}  # train and test draw from separate random streams
#: Rendered images are kept in memory when the whole set fits in this many bytes.
CACHE_BYTES = 64 * 2**20


def cifar_transform(image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """Resize to ``image_size`` x ``image_size``, to a tensor, channels to [-1, 1]."""
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}.")
    return transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )


def _jitter(rgb: Sequence[int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    shifted = np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(shifted[0]), int(shifted[1]), int(shifted[2]))


class SyntheticShapes10(Dataset):
    """A deterministic 10-class image classification set with CIFAR-10's interface.

    Item ``i`` has label ``i % 10`` (balanced classes) and is drawn from its own random
    generator seeded with ``(seed, split, i)``: any item can be re-rendered alone and is
    identical on every run. Images are rendered when first asked for and, when the whole
    set fits in :data:`CACHE_BYTES` (e.g. 2,000 images at 32 px), kept for later epochs;
    large sets (50,000 at 224 px) are re-rendered instead, costing no memory and no disk.
    """

    classes: list[str] = list(SYNTHETIC_CLASSES)

    def __init__(
        self,
        n_items: int,
        train: bool,
        image_size: int = 32,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be at least 1, got {n_items}.")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}.")
        self.n_items = int(n_items)
        self.train = bool(train)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.transform = transform
        self.targets: list[int] = [i % len(SYNTHETIC_CLASSES) for i in range(self.n_items)]
        fits = self.n_items * self.image_size**2 * 3 <= CACHE_BYTES
        self._rendered: dict[int, Image.Image] | None = {} if fits else None

    def __len__(self) -> int:
        return self.n_items

    def scene(self, index: int) -> shapes.Scene:
        """The scene of item ``index``: one object of its class, everything else random."""
        if not 0 <= index < self.n_items:
            raise IndexError(f"index {index} out of range for {self.n_items} items")
        rng = np.random.default_rng([self.seed, _STREAMS[self.train], index])
        colour, shape = SYNTHETIC_CLASSES[self.targets[index]].split(" ")
        radius = float(rng.uniform(*_RADIUS_RANGE))
        x, y = rng.uniform(radius + _MARGIN, 1.0 - radius - _MARGIN, size=2)
        background = list(shapes.BACKGROUNDS)[int(rng.integers(len(shapes.BACKGROUNDS)))]
        obj = shapes.SceneObject(
            colour=colour,
            shape=shape,
            size="large",
            x=float(x),
            y=float(y),
            radius=radius,
            rgb=_jitter(shapes.PALETTE[colour], rng, amount=30),
        )
        return shapes.Scene(
            objects=[obj],
            background=background,
            texture=shapes.TEXTURES[int(rng.integers(len(shapes.TEXTURES)))],
            background_rgb=_jitter(shapes.BACKGROUNDS[background], rng, amount=10),
            texture_seed=int(rng.integers(2**31)),
        )

    def image(self, index: int) -> Image.Image:
        """Item ``index`` as an RGB PIL image, before the transform."""
        if self._rendered is not None and index in self._rendered:
            return self._rendered[index]
        image = shapes.render_scene(self.scene(index), self.image_size)
        if self._rendered is not None:
            self._rendered[index] = image
        return image

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.image(index)
        return (self.transform(image) if self.transform is not None else image), self.targets[index]


class _FirstItems(Subset):
    """The first ``n`` items of a dataset, keeping its ``classes`` and ``targets``."""

    def __init__(self, dataset: Any, n: int) -> None:
        super().__init__(dataset, range(min(n, len(dataset))))
        self.classes = list(dataset.classes)
        self.targets = [int(dataset.targets[i]) for i in self.indices]


def _local_archives(root: Path) -> list[Path]:
    """Where a copy of the original ``cifar-10-python.tar.gz`` is looked for, in order."""
    name = _TorchvisionCIFAR10.filename
    return list(dict.fromkeys([root / name, data_home() / name, cache_dir() / name]))


def _real_cifar10(root: Path, train: bool, transform: Callable) -> datasets.CIFAR10:
    """torchvision's CIFAR-10 from ``root``; else from a local copy of the archive; else downloaded.

    Local copies are verified as a download is: the archive by its MD5 checksum, the
    unpacked batches by theirs (torchvision checks them whenever it opens the folder).
    """
    try:
        return datasets.CIFAR10(root=str(root), train=train, transform=transform, download=False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        pass
    candidates = _local_archives(root)
    local = next((path for path in candidates if path.is_file()), None)
    if local is not None:
        if not check_integrity(str(local), _TorchvisionCIFAR10.tgz_md5):
            raise OSError(
                f"{local} does not match CIFAR-10's MD5 checksum {_TorchvisionCIFAR10.tgz_md5}: "
                f"an incomplete or different file. Delete it, or replace it with {_TorchvisionCIFAR10.url}."
            )
        logger.info("Unpacking the local copy %s into %s", local, root)
        extract_archive(str(local), str(root))
        return datasets.CIFAR10(root=str(root), train=train, transform=transform, download=False)
    runtime_module.require_online(
        "the CIFAR-10 dataset",
        CIFAR10_HOST,
        where=f"{root / _TorchvisionCIFAR10.base_folder} and {', '.join(str(p) for p in candidates)}",
        how_to_get=f"download {_TorchvisionCIFAR10.url} into {cache_dir()}",
    )
    logger.info("Downloading CIFAR-10 into %s", root)
    return datasets.CIFAR10(root=str(root), train=train, transform=transform, download=True)


def load_cifar10(
    run: Runtime,
    train: bool,
    image_size: int = 32,
    data_dir: str | os.PathLike[str] | None = None,
    max_items: int | None = None,
) -> Dataset:
    """The CIFAR-10 split ``train`` for ``run``, as ``(image [3, S, S], label)`` items.

    ``full`` reads real CIFAR-10 from ``data_dir`` (default ``$DLDNA_DATA_DIR/cifar10``),
    downloading it once when it is not there; the synthetic profiles return a
    :class:`SyntheticShapes10` of the same interface. Images are resized to
    ``image_size`` (the original chapter trained ViT-B/16 at 224 px) and normalised to
    [-1, 1]. ``max_items`` keeps only the first items (a quick run on a subset).
    """
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be a positive number of items or None, got {max_items}.")
    transform = cifar_transform(image_size)
    if run.synthetic:
        n_train, n_test = SYNTHETIC_SIZES["smoke" if run.smoke else "full"]
        n = n_train if train else n_test
        if max_items is not None:
            n = min(n, max_items)
        return SyntheticShapes10(n, train=train, image_size=image_size, seed=run.seed, transform=transform)

    root = Path(data_dir) if data_dir is not None else data_home() / "cifar10"
    dataset = _real_cifar10(root, train, transform)
    return dataset if max_items is None else _FirstItems(dataset, max_items)
