"""Pick the caption data a run may use, from its :class:`~dldna.runtime.Runtime`.

=====================  =============================================  ==================
profile                data                                           default folder
=====================  =============================================  ==================
``smoke``              synthetic shapes, 256 images, seed = run seed  data/shapes-smoke
``full`` + offline     synthetic shapes at Flickr8k scale (8,091)     data/shapes-full
``full`` + online      real Flickr8k (downloaded once)                data/flickr8k
=====================  =============================================  ==================

Synthetic folders also get VQA questions about their scenes (:mod:`dldna.data.vqa`, in
VQA v2's layout under ``vqa/``), on the same image-level split as the captions.

Default folders are relative to ``$DLDNA_DATA_DIR`` when set, else to the working
directory. Every call is idempotent: existing complete data is reused.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dldna.runtime import Runtime

from . import shapes, vqa
from .flickr8k import FLICKR8K_IMAGES, Flickr8kDataset, download_flickr8k, load_or_create_split, read_captions

logger = logging.getLogger(__name__)

SMOKE_IMAGES = 256
ZERO_SHOT_IMAGES = 64


@dataclass
class CaptionData:
    """Where a caption dataset lives, and whether it is synthetic."""

    root: Path
    image_dir: Path
    caption_file: Path
    synthetic: bool

    @classmethod
    def at(cls, root: str | os.PathLike[str], synthetic: bool) -> CaptionData:
        root = Path(root)
        return cls(root=root, image_dir=root / "Images", caption_file=root / "captions.txt", synthetic=synthetic)

    def image_names(self) -> list[str]:
        """Unique image names in caption-file order."""
        return list(dict.fromkeys(name for name, _ in read_captions(self.caption_file)))

    def split(self, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, list[str]]:
        """The saved image-level train/val/test split for ``seed``."""
        return load_or_create_split(self.root, self.image_names(), seed=seed, fractions=fractions)

    def dataset(self, **kwargs: Any) -> Flickr8kDataset:
        """A :class:`Flickr8kDataset` over this data (keyword arguments pass through)."""
        return Flickr8kDataset(self.image_dir, self.caption_file, **kwargs)


def data_home() -> Path:
    """Base folder for default data locations (``$DLDNA_DATA_DIR`` or ``./data``)."""
    return Path(os.environ.get("DLDNA_DATA_DIR") or "data")


def prepare_caption_data(
    runtime: Runtime,
    data_dir: str | os.PathLike[str] | None = None,
    n_images: int | None = None,
    image_size: int = shapes.DEFAULT_IMAGE_SIZE,
    name: str | None = None,
) -> CaptionData:
    """Make sure the run's caption data exists on disk and say where it is.

    ``n_images``, ``image_size`` and ``name`` (the default folder under the data home)
    apply to synthetic data only; real Flickr8k is what it is.
    """
    if runtime.synthetic:
        default_n, default_dir = (SMOKE_IMAGES, "shapes-smoke") if runtime.smoke else (FLICKR8K_IMAGES, "shapes-full")
        default_dir = name or default_dir
        root = Path(data_dir) if data_dir is not None else data_home() / default_dir
        shapes.generate_dataset(root, n_images or default_n, seed=runtime.seed, image_size=image_size)
        vqa.prepare_vqa(root, seed=runtime.seed)  # questions about the same scenes, same split
        return CaptionData.at(root, synthetic=True)

    if n_images is not None:
        logger.info("n_images=%d is ignored: the full profile uses all of Flickr8k.", n_images)
    root = download_flickr8k(Path(data_dir) if data_dir is not None else data_home() / "flickr8k")
    return CaptionData.at(root, synthetic=False)


def prepare_zero_shot_data(
    runtime: Runtime,
    data_dir: str | os.PathLike[str] | None = None,
    n_images: int = ZERO_SHOT_IMAGES,
    image_size: int = shapes.DEFAULT_IMAGE_SIZE,
) -> CaptionData:
    """Synthetic scenes that each show a held-out colour x shape pair (every profile).

    Models trained on :func:`prepare_caption_data`'s synthetic data never saw these pairs,
    so retrieval on this set measures compositional zero-shot transfer.
    """
    root = Path(data_dir) if data_dir is not None else data_home() / "shapes-zero-shot"
    shapes.generate_dataset(root, n_images, seed=runtime.seed, image_size=image_size, zero_shot=True)
    vqa.prepare_vqa(root, seed=runtime.seed, zero_shot=True)
    return CaptionData.at(root, synthetic=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m dldna.data.prepare --profile smoke``: make a profile's data ready."""
    import argparse

    from dldna.runtime import setup

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--profile", default=None, help="smoke or full (default: $DLDNA_PROFILE, else full)")
    parser.add_argument("--data-dir", default=None, help="folder for the caption data")
    parser.add_argument("--images", type=int, default=None, help="number of synthetic images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run = setup(args.profile, device="cpu", seed=args.seed)
    data = prepare_caption_data(run, args.data_dir, args.images)
    zero_shot = prepare_zero_shot_data(run)
    logger.info("caption data: %s (%d images)", data.root, len(data.image_names()))
    logger.info("zero-shot data: %s", zero_shot.root)


if __name__ == "__main__":
    main()
