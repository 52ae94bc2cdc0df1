"""The single photos the chapter's examples run on.

In the ``full`` profile these are the COCO val2017 images the original chapter used,
downloaded once into a cache folder. In the synthetic profiles (smoke, or full while
offline) each is replaced by a real photo that scikit-image ships, so the examples still
run on a natural image without any network.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..runtime import Runtime, require_online
from .flickr8k import cache_dir

logger = logging.getLogger(__name__)

COCO_HOST = "images.cocodataset.org"


@dataclass(frozen=True)
class SampleImage:
    """A named example photo: its URL for the full profile and an offline stand-in."""

    url: str
    description: str
    offline: str  # name of a function in skimage.data


SAMPLE_IMAGES: dict[str, SampleImage] = {
    "coco_632": SampleImage(
        f"http://{COCO_HOST}/val2017/000000000632.jpg", "a bedroom (COCO val2017 #632)", "coffee"
    ),
    "coco_139": SampleImage(
        f"http://{COCO_HOST}/val2017/000000000139.jpg", "a living room (COCO val2017 #139)", "astronaut"
    ),
    "coco_39769": SampleImage(
        f"http://{COCO_HOST}/val2017/000000039769.jpg", "two cats on a couch (COCO val2017 #39769)", "chelsea"
    ),
}


def offline_photo(name: str) -> Image.Image:
    """A photo bundled with scikit-image (``chelsea`` is a cat, ``coffee`` a cup...)."""
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def sample_image(name: str, runtime: Runtime) -> Image.Image:
    """Return the example photo ``name`` of :data:`SAMPLE_IMAGES` as an RGB image."""
    if name not in SAMPLE_IMAGES:
        raise KeyError(f"Unknown sample image {name!r}; known: {', '.join(SAMPLE_IMAGES)}")
    sample = SAMPLE_IMAGES[name]
    if runtime.synthetic:
        return offline_photo(sample.offline)
    path = cache_dir() / "images" / Path(sample.url).name
    if not path.exists():
        require_online(f"the COCO image {sample.url}", COCO_HOST)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        logger.info("Downloading %s", sample.url)
        urllib.request.urlretrieve(sample.url, partial)
        partial.replace(path)
    return Image.open(path).convert("RGB")
