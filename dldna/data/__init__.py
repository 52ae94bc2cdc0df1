"""Caption data: real Flickr8k and a synthetic look-alike, read by one loader.

The names below are imported lazily (PEP 562), so ``python -m dldna.data.shapes`` starts
without importing torch; ``from dldna.data import Flickr8kDataset`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # synthetic shapes
    "COLOURS": "shapes",
    "SHAPES": "shapes",
    "HELD_OUT": "shapes",
    "Scene": "shapes",
    "SceneObject": "shapes",
    "sample_scene": "shapes",
    "render_scene": "shapes",
    "describe_scene": "shapes",
    "caption_corpus": "shapes",
    "generate_dataset": "shapes",
    # reader, splits and download
    "CaptionFileError": "flickr8k",
    "CorruptImageError": "flickr8k",
    "DatasetLayoutError": "flickr8k",
    "Flickr8kDataset": "flickr8k",
    "read_captions": "flickr8k",
    "image_level_split": "flickr8k",
    "load_or_create_split": "flickr8k",
    "download_flickr8k": "flickr8k",
    # profile-aware preparation
    "CaptionData": "prepare",
    "prepare_caption_data": "prepare",
    "prepare_zero_shot_data": "prepare",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # static tools see ordinary imports
    from .flickr8k import (
        CaptionFileError,
        CorruptImageError,
        DatasetLayoutError,
        Flickr8kDataset,
        download_flickr8k,
        image_level_split,
        load_or_create_split,
        read_captions,
    )
    from .prepare import CaptionData, prepare_caption_data, prepare_zero_shot_data
    from .shapes import (
        COLOURS,
        HELD_OUT,
        SHAPES,
        Scene,
        SceneObject,
        caption_corpus,
        describe_scene,
        generate_dataset,
        render_scene,
        sample_scene,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
