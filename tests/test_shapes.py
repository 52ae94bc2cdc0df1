"""The synthetic captioned-shapes generator (dldna.data.shapes)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dldna.data import shapes
from dldna.data.flickr8k import read_captions
from dldna.data.shapes import (
    COLOURS,
    HELD_OUT,
    SHAPES,
    Scene,
    SceneObject,
    caption_corpus,
    describe_scene,
    generate_dataset,
    make_example,
    render_scene,
    sample_scene,
)

NAME = re.compile(r"^\d{10}_[0-9a-f]{10}\.jpg$")
COLOUR_WORDS = {w: c for c, ws in shapes._COLOUR_WORDS.items() for w in ws}
SHAPE_WORDS = {w: s for s, ws in shapes._SHAPE_WORDS.items() for w in ws}


def _rows(root: Path) -> list[list[str]]:
    with open(root / "captions.txt", encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_layout_header_and_five_captions(tmp_path):
    root = generate_dataset(tmp_path / "d", 12, seed=3, image_size=64)
    images = sorted((root / "Images").iterdir())
    assert len(images) == 12
    assert all(NAME.match(p.name) for p in images)
    assert (root / "captions.txt").read_text(encoding="utf-8").splitlines()[0] == "image,caption"
    rows = _rows(root)[1:]
    assert len(rows) == 60
    per_image: dict[str, list[str]] = {}
    for name, caption in rows:
        per_image.setdefault(name, []).append(caption)
    assert set(per_image) == {p.name for p in images}
    assert all(len(c) == 5 and len(set(c)) == 5 for c in per_image.values())
    # The project's reader sees the same rows (header skipped, quoted commas kept).
    assert read_captions(root / "captions.txt") == [tuple(r) for r in rows]
    scenes = [json.loads(line) for line in (root / "scenes.jsonl").read_text().splitlines()]
    assert [s["image"] for s in scenes] == list(per_image)
    assert all(1 <= len(s["objects"]) <= 3 for s in scenes)
    assert json.loads((root / "dataset.json").read_text())["complete"] is True
    from PIL import Image

    with Image.open(images[0]) as im:
        assert im.size == (64, 64) and im.mode == "RGB"


def test_same_seed_identical_bytes_other_seed_differs(tmp_path):
    a = generate_dataset(tmp_path / "a", 10, seed=1, image_size=48)
    b = generate_dataset(tmp_path / "b", 10, seed=1, image_size=48)
    c = generate_dataset(tmp_path / "c", 10, seed=2, image_size=48)
    assert (a / "captions.txt").read_bytes() == (b / "captions.txt").read_bytes()
    assert (a / "captions.txt").read_bytes() != (c / "captions.txt").read_bytes()
    for p in (a / "Images").iterdir():
        assert p.read_bytes() == (b / "Images" / p.name).read_bytes()
    assert not {p.name for p in (a / "Images").iterdir()} & {p.name for p in (c / "Images").iterdir()}


def test_caption_corpus_matches_generated_captions(tmp_path):
    root = generate_dataset(tmp_path / "d", 7, seed=5, image_size=32)
    assert caption_corpus(7, seed=5) == [r[1] for r in _rows(root)[1:]]


def test_held_out_pairs_absent_from_normal_data_and_present_in_zero_shot(tmp_path):
    held = set(HELD_OUT)
    assert len(held) >= 3 and held <= {(c, s) for c in COLOURS for s in SHAPES}
    normal = [make_example(0, i)[1] for i in range(1500)]
    assert not any(held & set(s.pairs) for s in normal)
    # Every held-out pair is still a legal scene member in the zero-shot stream.
    root = generate_dataset(tmp_path / "zs", 40, seed=0, image_size=32, zero_shot=True)
    scenes = [json.loads(line) for line in (root / "scenes.jsonl").read_text().splitlines()]
    used = [{(o["colour"], o["shape"]) for o in s["objects"]} for s in scenes]
    assert all(u & held for u in used)
    assert set().union(*used) & held == held
    normal_names = {shapes.image_name(0, i) for i in range(40)}
    assert not normal_names & {s["image"] for s in scenes}


def test_scenes_are_valid_and_varied():
    rng = np.random.default_rng(0)
    counts = {1: 0, 2: 0, 3: 0}
    sizes, colours, kinds = set(), set(), set()
    for _ in range(400):
        scene = sample_scene(rng)
        counts[len(scene.objects)] += 1
        assert len(set(scene.pairs)) == len(scene.pairs)
        for k, o in enumerate(scene.objects):
            assert o.radius <= o.x <= 1 - o.radius and o.radius <= o.y <= 1 - o.radius
            sizes.add(o.size), colours.add(o.colour), kinds.add(o.shape)
            for other in scene.objects[k + 1 :]:
                assert math.hypot(o.x - other.x, o.y - other.y) > o.radius + other.radius
    assert all(v > 50 for v in counts.values())
    assert sizes == {"small", "large"} and colours == set(COLOURS) and kinds == set(SHAPES)
    assert len(COLOURS) >= 6 and len(SHAPES) >= 4


def test_captions_are_truthful_and_rarely_repeat():
    """Every colour, shape and count word in a caption belongs to its own scene."""
    captions, joined = [], ""
    for i in range(600):
        _, scene, caps = make_example(11, i)
        colours = {o.colour for o in scene.objects}
        kinds = {o.shape for o in scene.objects}
        for caption in caps:
            text = caption.lower()
            words = re.findall(r"[a-z]+", text)
            assert {COLOUR_WORDS[w] for w in words if w in COLOUR_WORDS} <= colours, (caption, scene)
            assert {SHAPE_WORDS[w] for w in words if w in SHAPE_WORDS} <= kinds, (caption, scene)
            for number, word in ((2, "two"), (3, "three")):
                if word in words:
                    assert len(scene.objects) == number, (caption, scene)
        captions += caps
        joined += " ".join(caps).lower() + " "
    assert len(set(captions)) / len(captions) > 0.9
    for phrase in ("left of", "right of", "above", "below", "two", "three", "corner", "background"):
        assert phrase in joined


def _obj(colour: str, shape: str, x: float, y: float, radius: float = 0.18) -> SceneObject:
    return SceneObject(colour, shape, "large", x, y, radius, shapes.PALETTE[colour])


def test_relation_words_follow_geometry():
    left, right = _obj("red", "circle", 0.25, 0.5), _obj("blue", "square", 0.75, 0.55)
    top, bottom = _obj("green", "star", 0.5, 0.2), _obj("white", "cross", 0.55, 0.8)
    assert shapes.relation(left, right) == "left" and shapes.relation(right, left) == "right"
    assert shapes.relation(top, bottom) == "above" and shapes.relation(bottom, top) == "below"
    scene = Scene([left, right], "black", "plain", (20, 20, 20))
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(40):
        for caption in describe_scene(scene, rng):
            found = re.search(r"\b(red|blue)\b.*?\b(left|right) of\b", caption.lower())
            if found:  # the subject of "X left of Y" is the first colour named
                assert (found.group(1) == "red") == (found.group(2) == "left"), caption
                checked += 1
    assert checked > 20


def test_render_draws_objects_where_the_scene_says():
    scene = Scene(
        [_obj("red", "circle", 0.25, 0.25), _obj("blue", "square", 0.7, 0.7)],
        "black", "plain", (20, 20, 20),
    )  # fmt: skip
    pixels = np.asarray(render_scene(scene, 100), dtype=int)  # [H, W, 3]
    assert pixels.shape == (100, 100, 3)
    assert np.abs(pixels[25, 25] - shapes.PALETTE["red"]).max() < 10
    assert np.abs(pixels[70, 70] - shapes.PALETTE["blue"]).max() < 10
    assert np.abs(pixels[5, 95] - 20).max() < 10


def test_cli_and_idempotence(tmp_path, monkeypatch):
    out = tmp_path / "cli"
    assert shapes.main(["--out", str(out), "--images", "6", "--seed", "4", "--size", "40"]) == 0
    first = (out / "captions.txt").read_bytes()
    assert len((out / "captions.txt").read_text().splitlines()) == 1 + 6 * 5

    def fail(*args, **kwargs):
        raise AssertionError("a complete dataset must not be regenerated")

    with monkeypatch.context() as m:
        m.setattr(shapes, "render_scene", fail)
        shapes.main(["--out", str(out), "--images", "6", "--seed", "4", "--size", "40"])
    assert (out / "captions.txt").read_bytes() == first

    # Other parameters: regenerated, and no stale image survives.
    generate_dataset(out, 3, seed=4, image_size=40)
    assert sorted(p.name for p in (out / "Images").iterdir()) == sorted(shapes.image_name(4, i) for i in range(3))
    assert json.loads((out / "dataset.json").read_text())["n_images"] == 3


def test_cli_zero_shot_flag(tmp_path):
    shapes.main(["--out", str(tmp_path / "z"), "--images", "4", "--zero-shot", "--size", "32"])
    assert json.loads((tmp_path / "z" / "dataset.json").read_text())["zero_shot"] is True


def test_incomplete_run_is_redone(tmp_path):
    out = generate_dataset(tmp_path / "d", 4, image_size=32)
    manifest = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**manifest, "complete": False}))
    next((out / "Images").iterdir()).unlink()
    generate_dataset(out, 4, image_size=32)
    assert len(list((out / "Images").iterdir())) == 4


def test_regenerating_deletes_only_the_files_its_manifest_lists(tmp_path, caplog):
    out = generate_dataset(tmp_path / "d", 4, image_size=32)
    old = set(os.listdir(out / "Images"))
    (out / "Images" / "holiday.jpg").write_bytes(b"the user's own photo")
    with caplog.at_level(logging.WARNING, logger="dldna.data.shapes"):
        generate_dataset(out, 3, seed=1, image_size=32)
    assert (out / "Images" / "holiday.jpg").read_bytes() == b"the user's own photo"
    assert "holiday.jpg" in caplog.text and "kept" in caplog.text
    assert not old & set(os.listdir(out / "Images"))
    assert len(read_captions(out / "captions.txt")) == 3 * 5
    # The kept file does not make the finished dataset look incomplete.
    mtime = (out / "dataset.json").stat().st_mtime_ns
    generate_dataset(out, 3, seed=1, image_size=32)
    assert (out / "dataset.json").stat().st_mtime_ns == mtime


def test_refuses_to_overwrite_foreign_data(tmp_path):
    (tmp_path / "Images").mkdir()
    (tmp_path / "Images" / "1000268201_693b08cb0e.jpg").write_bytes(b"real photo")
    (tmp_path / "captions.txt").write_text("image,caption\n1000268201_693b08cb0e.jpg,A child .\n")
    with pytest.raises(FileExistsError, match="did not write"):
        generate_dataset(tmp_path, 3)
    assert (tmp_path / "Images" / "1000268201_693b08cb0e.jpg").read_bytes() == b"real photo"


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_images"):
        generate_dataset("unused", 0)
    with pytest.raises(ValueError, match="n_objects"):
        sample_scene(np.random.default_rng(0), n_objects=4)


def test_importing_the_generator_does_not_import_torch():
    code = "import sys, dldna.data.shapes; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
