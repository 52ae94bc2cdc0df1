"""The single photos the chapter's examples run on.

In the ``full`` profile these are the COCO val2017 images the original chapter used: read
from a local copy of COCO's ``val2017`` folder when there is one (``$DLDNA_DATA_DIR/coco/
val2017`` or ``$DLDNA_DATA_DIR/val2017``, the layout of COCO's ``val2017.zip``), else from
the cache folder, else downloaded once into it. In the synthetic profiles (smoke, or full
with random weights) each is replaced by a real photo that scikit-image ships, so the
examples still run on a natural image without any network.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..runtime import Runtime, require_online
from .flickr8k import CorruptImageError, cache_dir
from .prepare import data_home

logger = logging.getLogger(__name__)

COCO_HOST = "images.cocodataset.org"


@dataclass(frozen=True)
class SampleImage:
    """A named example photo: its URL for the full profile and an offline stand-in."""

    url: str
    description: str
    offline: str  # name of a function in skimage.data
    #: The held-out synthetic scene that stands in for the photo next to the models trained
    #: on scenes (smoke profile, ``stand_in="scene"``): the ``k``-th test scene with ``n``
    #: objects, as ``(n, k)``.
    scene: tuple[int, int] = (2, 0)


SAMPLE_IMAGES: dict[str, SampleImage] = {
    "coco_632": SampleImage(
        f"http://{COCO_HOST}/val2017/000000000632.jpg", "a bedroom (COCO val2017 #632)", "coffee", (3, 0)
    ),
    "coco_139": SampleImage(
        f"http://{COCO_HOST}/val2017/000000000139.jpg", "a living room (COCO val2017 #139)", "astronaut", (3, 1)
    ),
    "coco_39769": SampleImage(
        f"http://{COCO_HOST}/val2017/000000039769.jpg", "two cats on a couch (COCO val2017 #39769)", "chelsea"
    ),
}


def offline_photo(name: str) -> Image.Image:
    """A photo bundled with scikit-image (``chelsea`` is a cat, ``coffee`` a cup...)."""
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def local_copies(name: str) -> list[Path]:
    """Where the photo ``name`` of :data:`SAMPLE_IMAGES` is looked for, in this order."""
    file_name = Path(SAMPLE_IMAGES[name].url).name
    home = data_home()
    return [home / "coco" / "val2017" / file_name, home / "val2017" / file_name, cache_dir() / "images" / file_name]


def _open_verified(path: Path) -> Image.Image:
    """Decode ``path`` fully (a truncated or non-image file fails here, naming it)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, SyntaxError) as exc:  # PIL: UnidentifiedImageError, truncated data
        raise CorruptImageError(f"Cannot decode the photo {path} ({exc}). Delete it and run again.") from None


#: What replaces a photo in the synthetic profiles: a scikit-image photo, or (smoke only)
#: a held-out synthetic scene, for the models trained on scenes (:mod:`dldna.scene_models`).
STAND_INS = ("photo", "scene")


def sample_image(name: str, runtime: Runtime, stand_in: str = "photo") -> Image.Image:
    """Return the example photo ``name`` of :data:`SAMPLE_IMAGES` as an RGB image.

    ``stand_in="scene"`` asks, in the smoke profile, for the held-out scene
    :attr:`SampleImage.scene` instead of a scikit-image photo: what the
    smoke profile's BLIP, ViLT and CLIP were trained to see (:func:`sample_scene_record`
    gives its description).
    """
    if name not in SAMPLE_IMAGES:
        raise KeyError(f"Unknown sample image {name!r}; known: {', '.join(SAMPLE_IMAGES)}")
    if stand_in not in STAND_INS:
        raise ValueError(f"stand_in = {stand_in!r} is not allowed: use one of {', '.join(map(repr, STAND_INS))}.")
    sample = SAMPLE_IMAGES[name]
    if runtime.smoke and stand_in == "scene":
        return _stand_in_scene(name)[0]
    if runtime.synthetic:
        return offline_photo(sample.offline)
    candidates = local_copies(name)
    local = next((path for path in candidates if path.is_file()), None)
    if local is not None:
        return _open_verified(local)
    path = candidates[-1]
    require_online(
        f"the COCO image {sample.url}", f"http://{COCO_HOST}/", where=", ".join(str(p) for p in candidates),
        how_to_get=f"download it into {path.parent}",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    logger.info("Downloading %s", sample.url)
    urllib.request.urlretrieve(sample.url, partial)
    image = _open_verified(partial)  # verified before it takes the final name
    partial.replace(path)
    return image


def _stand_in_scene(name: str) -> tuple[Image.Image, dict]:
    """The held-out scene (test split) that stands in for photo ``name``."""
    from ..scene_models.evaluate import held_out_scene

    if name not in SAMPLE_IMAGES:
        raise KeyError(f"Unknown sample image {name!r}; known: {', '.join(SAMPLE_IMAGES)}")
    return held_out_scene(*SAMPLE_IMAGES[name].scene)


def sample_scene_record(name: str) -> dict:
    """The ``scenes.jsonl`` record of the scene that stands in for photo ``name``."""
    return _stand_in_scene(name)[1]
