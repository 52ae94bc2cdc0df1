"""Synthetic captioned shapes, written in Flickr8k's exact layout.

Offline runs (the ``smoke`` profile, or ``full`` with ``DLDNA_OFFLINE=1``) cannot download
Flickr8k, so this module draws scenes of 1-3 coloured shapes and describes each scene in
five different captions. The output folder looks exactly like Flickr8k::

    OUT/Images/<10 digits>_<10 hex>.jpg
    OUT/captions.txt        # "image,caption" header, then one row per caption
    OUT/scenes.jsonl        # extra: the ground-truth objects of every image
    OUT/dataset.json        # extra: the parameters, so a second call can skip the work

so the one reader in :mod:`dldna.data.flickr8k` loads both.

Why so many variations? A first prototype (6 colours x 3 shapes, 1-2 objects, one
template) was solved to 99% retrieval by a tiny dual encoder that only pools bag-of-words
features: every attention variant looked equally good. Here scenes vary count (1-3),
colour, shape, size and position; captions vary templates, synonyms, word order and
spatial relations ("a red circle to the left of a blue square"), so a model must bind each
attribute to the right object. Some colour x shape pairs (:data:`HELD_OUT`) never appear
in normal data; ``zero_shot=True`` makes a set in which every image shows at least one of
them: an honest zero-shot test that needs no internet.

Everything is deterministic: image ``i`` of seed ``s`` is drawn from its own random
generator seeded with ``(s, stream, i)``, so any subset can be regenerated alone and the
files are byte-identical from run to run.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dldna.atomic import atomic_write_text
from dldna.registry import Registry

logger = logging.getLogger(__name__)

#: Object colours and their base RGB values (each object gets a slightly jittered shade).
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 35),
    "green": (40, 165, 60),
    "blue": (40, 85, 220),
    "purple": (140, 55, 190),
    "white": (240, 240, 240),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")
SIZES: tuple[str, ...] = ("small", "large")

#: Colour x shape pairs that normal data never shows; the zero-shot set always does.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("red", "triangle"),
    ("blue", "circle"),
    ("green", "star"),
    ("yellow", "cross"),
)

#: Dark, neutral backgrounds keep every object colour clearly visible.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (18, 18, 22),
    "dark gray": (62, 62, 66),
    "gray": (105, 105, 110),
    "brown": (88, 62, 42),
}
TEXTURES: tuple[str, ...] = ("plain", "noise", "gradient")

CAPTIONS_PER_IMAGE = 5
DEFAULT_IMAGE_SIZE = 128
#: Bump when scenes, captions or rendering change, so old folders are regenerated.
GENERATOR_VERSION = 1
CAPTION_HEADER = "image,caption"

# Object radius (fraction of the image side) for each size class.
_RADIUS_RANGE = {"small": (0.07, 0.10), "large": (0.15, 0.20)}
_MARGIN = 0.02  # keep shapes off the border
_GAP = 0.03  # minimum empty space between two objects' bounding circles
_COUNT_PROBS = (0.3, 0.4, 0.3)  # P(1 object), P(2), P(3)
_SUPERSAMPLE = 2  # draw at 2x and downsample: cheap anti-aliasing
_STREAMS = {False: 0, True: 1}  # normal and zero-shot data use separate random streams


@dataclass
class SceneObject:
    """One shape. ``x``, ``y`` and ``radius`` are fractions of the image side (y grows down)."""

    colour: str
    shape: str
    size: str
    x: float
    y: float
    radius: float
    rgb: tuple[int, int, int]


@dataclass
class Scene:
    """What one image shows; rendering and captions are both derived from it."""

    objects: list[SceneObject]
    background: str
    texture: str
    background_rgb: tuple[int, int, int]
    texture_seed: int = 0

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The (colour, shape) pair of every object."""
        return [(o.colour, o.shape) for o in self.objects]


# --------------------------------------------------------------------------- scenes


def _allowed_pairs(held_out: bool) -> list[tuple[str, str]]:
    held = set(HELD_OUT)
    return [(c, s) for c in COLOURS for s in SHAPES if ((c, s) in held) == held_out]


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 18) -> tuple[int, int, int]:
    shifted = np.clip(np.array(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(shifted[0]), int(shifted[1]), int(shifted[2]))


def _place(radii: Sequence[float], rng: np.random.Generator, tries: int = 200) -> list[tuple[float, float]] | None:
    """Rejection-sample non-overlapping centres for circles of the given radii."""
    centres: list[tuple[float, float]] = []
    for r in radii:
        for _ in range(tries):
            lo, hi = r + _MARGIN, 1.0 - r - _MARGIN
            x, y = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
            if all(math.hypot(x - cx, y - cy) >= r + radii[j] + _GAP for j, (cx, cy) in enumerate(centres)):
                centres.append((x, y))
                break
        else:
            return None
    return centres


def sample_scene(
    rng: np.random.Generator,
    *,
    zero_shot: bool = False,
    n_objects: int | None = None,
) -> Scene:
    """Draw a random scene of 1-3 objects with distinct (colour, shape) pairs.

    Normal scenes never use a :data:`HELD_OUT` pair; ``zero_shot=True`` scenes use at least
    one (the other objects may be anything).
    """
    if n_objects is None:
        n_objects = int(rng.choice(len(_COUNT_PROBS), p=_COUNT_PROBS)) + 1
    if not 1 <= n_objects <= 3:
        raise ValueError(f"n_objects must be 1, 2 or 3, got {n_objects}.")
    normal_pairs = _allowed_pairs(held_out=False)
    pool = normal_pairs + _allowed_pairs(held_out=True) if zero_shot else normal_pairs
    held = _allowed_pairs(held_out=True)

    chosen: list[tuple[str, str]] = []
    if zero_shot:
        chosen.append(held[int(rng.integers(len(held)))])
    while len(chosen) < n_objects:
        pair = pool[int(rng.integers(len(pool)))]
        if pair not in chosen:  # identical twins would make relation captions ambiguous
            chosen.append(pair)
    order = rng.permutation(n_objects)  # the held-out object is not always the first
    chosen = [chosen[i] for i in order]

    while True:  # terminates quickly: small sizes always fit
        sizes = [SIZES[int(rng.integers(len(SIZES)))] for _ in chosen]
        radii = [float(rng.uniform(*_RADIUS_RANGE[s])) for s in sizes]
        centres = _place(radii, rng)
        if centres is not None:
            break

    objects = [
        SceneObject(colour=c, shape=s, size=size, x=x, y=y, radius=r, rgb=_jitter(PALETTE[c], rng))
        for (c, s), size, r, (x, y) in zip(chosen, sizes, radii, centres)
    ]
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    return Scene(
        objects=objects,
        background=background,
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        background_rgb=_jitter(BACKGROUNDS[background], rng, amount=8),
        texture_seed=int(rng.integers(2**31)),
    )


# ------------------------------------------------------------------------- rendering


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape inscribed in the circle (cx, cy, r)."""
    if shape == "square":
        h = r * 0.8
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "star":
        points = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = -math.pi / 2 + k * math.pi / 5
            points.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return points
    if shape == "cross":
        w, e = 0.3 * r, 0.9 * r
        return [
            (cx - w, cy - e), (cx + w, cy - e), (cx + w, cy - w), (cx + e, cy - w),
            (cx + e, cy + w), (cx + w, cy + w), (cx + w, cy + e), (cx - w, cy + e),
            (cx - w, cy + w), (cx - e, cy + w), (cx - e, cy - w), (cx - w, cy - w),
        ]  # fmt: skip
    raise ValueError(f"Unknown shape {shape!r}; known shapes: {', '.join(SHAPES)}.")


def _apply_texture(image: Image.Image, scene: Scene) -> Image.Image:
    """Light sensor-like speckle or a lighting gradient over the whole picture."""
    if scene.texture == "plain":
        return image
    side = image.size[0]
    pixels = np.asarray(image, dtype=np.int16)  # [H, W, 3]
    if scene.texture == "noise":
        rng = np.random.default_rng(scene.texture_seed)
        pixels = pixels + rng.integers(-12, 13, size=(side, side, 1), dtype=np.int16)
    else:
        pixels = pixels + np.linspace(-18, 18, side).astype(np.int16)[:, None, None]  # [H, 1, 1]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def render_scene(scene: Scene, size: int = DEFAULT_IMAGE_SIZE) -> Image.Image:
    """Draw ``scene`` as a ``size`` x ``size`` RGB image (anti-aliased by supersampling)."""
    side = size * _SUPERSAMPLE
    image = Image.new("RGB", (side, side), scene.background_rgb)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
        if obj.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=obj.rgb)
        else:
            draw.polygon(_polygon(obj.shape, cx, cy, r), fill=obj.rgb)
    return _apply_texture(image.reduce(_SUPERSAMPLE), scene)


# -------------------------------------------------------------------------- captions

_COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red",),
    "orange": ("orange",),
    "yellow": ("yellow",),
    "green": ("green",),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "white": ("white",),
}
_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc"),
    "square": ("square",),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond", "rhombus"),
    "cross": ("cross", "plus sign"),
}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
_THING_WORDS = (("shape", "shapes"), ("object", "objects"), ("figure", "figures"))
# "a is <relation> b": left/right/above/below, each with several phrasings.
_RELATION_WORDS = {
    "left": ("to the left of", "left of", "on the left of"),
    "right": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
_POSITION_WORDS = {
    ("top", "left"): ("in the top left corner", "at the top left"),
    ("top", "center"): ("at the top", "near the top"),
    ("top", "right"): ("in the top right corner", "at the top right"),
    ("middle", "left"): ("on the left", "on the left side"),
    ("middle", "center"): ("in the center", "in the middle"),
    ("middle", "right"): ("on the right", "on the right side"),
    ("bottom", "left"): ("in the bottom left corner", "at the bottom left"),
    ("bottom", "center"): ("at the bottom", "near the bottom"),
    ("bottom", "right"): ("in the bottom right corner", "at the bottom right"),
}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _with_article(words: str, det: str) -> str:
    if det == "a" and words[0] in "aeiou":
        det = "an"
    return f"{det} {words}"


def _noun_phrase(obj: SceneObject, rng: np.random.Generator, det: str = "a", size_prob: float = 0.6) -> str:
    """E.g. "a small red circle", "one violet rhombus"; the size word is optional."""
    words = [_pick(rng, _COLOUR_WORDS[obj.colour]), _pick(rng, _SHAPE_WORDS[obj.shape])]
    if rng.random() < size_prob:
        words.insert(0, _pick(rng, _SIZE_WORDS[obj.size]))
    if det == "random":
        det = "one" if rng.random() < 0.2 else "a"
    return _with_article(" ".join(words), det)


def _join(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _listing(objects: Sequence[SceneObject], rng: np.random.Generator) -> str:
    """All objects in a random order, so word order alone does not identify the image."""
    order = rng.permutation(len(objects))
    return _join([_noun_phrase(objects[i], rng, det="random") for i in order])


def _position(obj: SceneObject, rng: np.random.Generator) -> str:
    row = "top" if obj.y < 1 / 3 else "bottom" if obj.y > 2 / 3 else "middle"
    col = "left" if obj.x < 1 / 3 else "right" if obj.x > 2 / 3 else "center"
    return _pick(rng, _POSITION_WORDS[(row, col)])


def relation(a: SceneObject, b: SceneObject) -> str:
    """Where ``a`` is relative to ``b`` along the axis that separates them most."""
    dx, dy = b.x - a.x, b.y - a.y
    if abs(dx) >= abs(dy):
        return "left" if dx > 0 else "right"
    return "above" if dy > 0 else "below"


def _relation_clause(objects: Sequence[SceneObject], rng: np.random.Generator) -> tuple[str, int, int]:
    """ "a red circle to the left of a blue square" for a random ordered pair."""
    i, j = (int(k) for k in rng.choice(len(objects), size=2, replace=False))
    a, b = objects[i], objects[j]
    text = f"{_noun_phrase(a, rng)} {_pick(rng, _RELATION_WORDS[relation(a, b)])} {_noun_phrase(b, rng)}"
    return text, i, j


def _count(objects: Sequence[SceneObject], rng: np.random.Generator) -> str:
    singular, plural = _THING_WORDS[int(rng.integers(len(_THING_WORDS)))]
    n = len(objects)
    return f"{_COUNT_WORDS[n]} {singular if n == 1 else plural}"


CaptionTemplate = Callable[[Scene, np.random.Generator], str]
#: name -> (template, smallest object count, largest object count), in registration order
TEMPLATES: Registry[tuple[CaptionTemplate, int, int]] = Registry("caption template")


def caption_template(
    name: str, min_objects: int = 1, max_objects: int = 3
) -> Callable[[CaptionTemplate], CaptionTemplate]:
    """Register a caption template that applies to scenes with this many objects."""

    def register(fn: CaptionTemplate) -> CaptionTemplate:
        TEMPLATES.add(name, (fn, min_objects, max_objects))
        return fn

    return register


@caption_template("listing")
def _t_listing(scene: Scene, rng: np.random.Generator) -> str:
    return _listing(scene.objects, rng)


@caption_template("count")
def _t_count(scene: Scene, rng: np.random.Generator) -> str:
    count, listing = _count(scene.objects, rng), _listing(scene.objects, rng)
    verb = "is" if len(scene.objects) == 1 else "are"
    return _pick(rng, (f"{count}: {listing}", f"there {verb} {count}: {listing}", f"{listing}, {count} in total"))


@caption_template("positions")
def _t_positions(scene: Scene, rng: np.random.Generator) -> str:
    order = rng.permutation(len(scene.objects))
    parts = [f"{_noun_phrase(scene.objects[i], rng)} {_position(scene.objects[i], rng)}" for i in order]
    prefix = "there is " if rng.random() < 0.3 else ""
    return prefix + _join(parts)


@caption_template("background")
def _t_background(scene: Scene, rng: np.random.Generator) -> str:
    listing = _listing(scene.objects, rng)
    bg = _with_article(f"{scene.background} background", "a")
    if scene.texture != "plain" and rng.random() < 0.5:
        bg = _with_article(f"{'speckled' if scene.texture == 'noise' else 'shaded'} {scene.background} background", "a")
    return _pick(rng, (f"{listing} on {bg}", f"{bg} with {listing}"))


@caption_template("picture")
def _t_picture(scene: Scene, rng: np.random.Generator) -> str:
    opener = _pick(rng, ("an image of", "a picture showing", "a drawing of", "a simple picture with"))
    return f"{opener} {_listing(scene.objects, rng)}"


@caption_template("single", max_objects=1)
def _t_single(scene: Scene, rng: np.random.Generator) -> str:
    obj = scene.objects[0]
    words = f"{_pick(rng, _COLOUR_WORDS[obj.colour])} {_pick(rng, _SHAPE_WORDS[obj.shape])}"
    return _pick(rng, (f"a single {words}", f"just one {words}", f"only {_noun_phrase(obj, rng)}"))


@caption_template("relation", min_objects=2)
def _t_relation(scene: Scene, rng: np.random.Generator) -> str:
    clause, i, j = _relation_clause(scene.objects, rng)
    if len(scene.objects) == 3:
        other = next(o for k, o in enumerate(scene.objects) if k not in (i, j))
        tail = _pick(
            rng,
            (f" and {_noun_phrase(other, rng)}", f", with {_noun_phrase(other, rng)} {_position(other, rng)}"),
        )
        return clause + tail
    return clause


@caption_template("counted_relation", min_objects=2)
def _t_counted_relation(scene: Scene, rng: np.random.Generator) -> str:
    clause, _, _ = _relation_clause(scene.objects, rng)
    return _pick(rng, (f"{_count(scene.objects, rng)}; {clause}", f"{clause}, {_count(scene.objects, rng)} in all"))


@caption_template("chain", min_objects=3)
def _t_chain(scene: Scene, rng: np.random.Generator) -> str:
    a, b, c = (scene.objects[int(k)] for k in rng.permutation(3))
    return (
        f"{_noun_phrase(a, rng)} {_pick(rng, _RELATION_WORDS[relation(a, b)])} {_noun_phrase(b, rng)}, "
        f"which is {_pick(rng, _RELATION_WORDS[relation(b, c)])} {_noun_phrase(c, rng)}"
    )


def _finish(text: str, rng: np.random.Generator) -> str:
    """Flickr8k style: capitalised, often ending with a detached full stop."""
    text = text[0].upper() + text[1:]
    return text + " ." if rng.random() < 0.5 else text


def describe_scene(scene: Scene, rng: np.random.Generator, n: int = CAPTIONS_PER_IMAGE) -> list[str]:
    """``n`` different captions, each from a different template where possible."""
    names = [k for k, (_, lo, hi) in TEMPLATES.items() if lo <= len(scene.objects) <= hi]
    order = [names[int(i)] for i in rng.permutation(len(names))]
    captions: list[str] = []
    seen: set[str] = set()  # compared without case and final full stop
    attempt = 0
    while len(captions) < n:
        template = TEMPLATES[order[attempt % len(order)]][0]
        text = template(scene, rng)
        attempt += 1
        if text.lower() not in seen or attempt > 50 * n:
            seen.add(text.lower())
            captions.append(_finish(text, rng))
    return captions


# ---------------------------------------------------------------------------- files


def _image_rng(seed: int, index: int, zero_shot: bool) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[zero_shot], index])


def image_name(seed: int, index: int, zero_shot: bool = False) -> str:
    """A Flickr8k-like file name (``<10 digits>_<10 hex>.jpg``) fixed by seed and index."""
    digest = hashlib.blake2b(f"dldna-shapes:{seed}:{_STREAMS[zero_shot]}:{index}".encode(), digest_size=16).digest()
    digits = int.from_bytes(digest[:8], "big") % 10**10
    return f"{digits:010d}_{digest[8:13].hex()}.jpg"


def make_example(seed: int, index: int, zero_shot: bool = False) -> tuple[str, Scene, list[str]]:
    """Image ``index`` of a dataset: its file name, scene and captions (nothing rendered)."""
    rng = _image_rng(seed, index, zero_shot)
    scene = sample_scene(rng, zero_shot=zero_shot)
    return image_name(seed, index, zero_shot), scene, describe_scene(scene, rng)


def caption_corpus(n_scenes: int = 500, seed: int = 0) -> list[str]:
    """Captions of the first ``n_scenes`` images of seed ``seed``, without rendering.

    The same captions that :func:`generate_dataset` writes, so a tokenizer trained on them
    knows the dataset's vocabulary. Fast: well under a millisecond per scene.
    """
    return [c for i in range(n_scenes) for c in make_example(seed, i)[2]]


@dataclass
class _Params:
    n_images: int
    seed: int
    image_size: int
    zero_shot: bool
    generator: str = "dldna.data.shapes"
    version: int = GENERATOR_VERSION
    captions_per_image: int = CAPTIONS_PER_IMAGE
    held_out: list[list[str]] = field(default_factory=lambda: [list(p) for p in HELD_OUT])


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(out: Path, params: _Params) -> bool:
    manifest = _read_manifest(out)
    if manifest is None or not manifest.pop("complete", False) or manifest != asdict(params):
        return False
    images = out / "Images"
    if not (out / "captions.txt").is_file() or not images.is_dir():
        return False
    return _own_images(manifest) <= set(os.listdir(images))


def _own_images(manifest: dict) -> set[str]:
    """The image files a generator run wrote, from its manifest's parameters (names are a
    function of seed, index and zero_shot); empty for a manifest without them."""
    try:
        n_images, seed, zero_shot = int(manifest["n_images"]), int(manifest["seed"]), bool(manifest["zero_shot"])
    except (KeyError, TypeError, ValueError):
        return set()
    return {image_name(seed, index, zero_shot) for index in range(n_images)}


def _clear_previous(out: Path) -> None:
    """Remove the files of an earlier generator run, as its manifest lists them.

    Images/ may hold files the generator did not write (a user's own pictures): they are
    kept. A folder with data but no manifest of this generator is refused outright.
    """
    images, captions = out / "Images", out / "captions.txt"
    has_data = captions.exists() or (images.is_dir() and any(images.iterdir()))
    manifest = _read_manifest(out)
    if has_data and (manifest is None or manifest.get("generator") != "dldna.data.shapes"):
        raise FileExistsError(
            f"{out} already holds Images/ or captions.txt that this generator did not write "
            "(no dataset.json from dldna.data.shapes). Choose an empty or new folder with --out, "
            "so real data such as Flickr8k is never overwritten."
        )
    if images.is_dir() and manifest is not None:
        own = _own_images(manifest)
        others = sorted(set(os.listdir(images)) - own)
        if others:
            logger.warning(
                "%s holds %d files this generator did not write (e.g. %s); they are kept.",
                images, len(others), ", ".join(others[:3]),
            )  # fmt: skip
        for name in own:
            (images / name).unlink(missing_ok=True)
    for name in ("captions.txt", "scenes.jsonl", "dataset.json"):
        (out / name).unlink(missing_ok=True)


def scene_record(name: str, scene: Scene) -> dict:
    """What ``scenes.jsonl`` says about one image: background, texture and every object."""
    return {
        "image": name,
        "background": scene.background,
        "texture": scene.texture,
        "objects": [
            {
                "colour": o.colour,
                "shape": o.shape,
                "size": o.size,
                "x": round(o.x, 4),
                "y": round(o.y, 4),
                "radius": round(o.radius, 4),
            }
            for o in scene.objects
        ],
    }


def _scene_record(name: str, scene: Scene) -> str:
    return json.dumps(scene_record(name, scene), sort_keys=True)


def generate_dataset(
    out_dir: str | os.PathLike[str],
    n_images: int,
    seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
    zero_shot: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write ``n_images`` captioned scenes to ``out_dir`` in Flickr8k's layout; return it.

    Idempotent: when ``out_dir`` already holds a complete dataset made with the same
    parameters (recorded in ``dataset.json``), nothing is redone. ``progress=None`` shows a
    progress bar only for more than 500 images.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}.")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}.")
    out = Path(out_dir)
    params = _Params(n_images=int(n_images), seed=int(seed), image_size=int(image_size), zero_shot=bool(zero_shot))
    if _is_complete(out, params):
        logger.info("Reusing the synthetic shapes dataset in %s (%d images).", out, n_images)
        return out

    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    (out / "Images").mkdir(exist_ok=True)
    _write_atomic(out / "dataset.json", json.dumps({**asdict(params), "complete": False}, indent=2))

    show = n_images > 500 if progress is None else progress
    indices = range(n_images)
    if show:
        from tqdm import tqdm

        indices = tqdm(indices, desc="Generating shapes", unit="img")
    rows: list[tuple[str, str]] = []
    scene_lines: list[str] = []
    for index in indices:
        name, scene, captions = make_example(params.seed, index, params.zero_shot)
        render_scene(scene, params.image_size).save(out / "Images" / name, format="JPEG", quality=90)
        rows.extend((name, c) for c in captions)
        scene_lines.append(_scene_record(name, scene))

    table = io.StringIO(newline="")
    table.write(CAPTION_HEADER + "\n")
    csv.writer(table, lineterminator="\n").writerows(rows)  # quotes captions with commas
    atomic_write_text(out / "captions.txt", table.getvalue())
    _write_atomic(out / "scenes.jsonl", "\n".join(scene_lines) + "\n")
    _write_atomic(out / "dataset.json", json.dumps({**asdict(params), "complete": True}, indent=2))
    logger.info("Wrote %d images and %d captions to %s.", n_images, len(rows), out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m dldna.data.shapes --out DIR --images N``."""
    parser = argparse.ArgumentParser(
        prog="dldna-shapes",
        description="Write a synthetic captioned-shapes dataset in Flickr8k's layout "
        "(DIR/Images/*.jpg and DIR/captions.txt).",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--images", type=int, default=256, help="number of images (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=DEFAULT_IMAGE_SIZE, help="image side in pixels")
    parser.add_argument("--zero-shot", action="store_true", help="only scenes with held-out colour/shape pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generate_dataset(args.out, args.images, seed=args.seed, image_size=args.size, zero_shot=args.zero_shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
