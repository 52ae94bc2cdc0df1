"""The small BLIP, ViLT and CLIP trained on synthetic scenes: training, floors, loaders."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from dldna import scene_models
from dldna.data import shapes
from dldna.floors import FloorError, check_floors
from dldna.scene_models.evaluate import (
    caption_scores,
    floor_figures,
    named_pairs,
    render_scene_set,
    zero_shot_candidates,
)

SMALL = ["--images", "40", "--eval-limit", "6"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("scene-data")


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, data_dir):
    """The training command with zero steps: a deliberately weakened model."""
    out = tmp_path_factory.mktemp("untrained")
    assert scene_models.main(["--out", str(out), "--data-dir", str(data_dir), "--steps-scale", "0", *SMALL]) == 0
    return out


def test_training_command_writes_models_processors_and_record(untrained):
    record = json.loads((untrained / "training.json").read_text())
    assert record["command"].startswith("python -m dldna.scene_models")
    assert record["config"]["seed"] == 0 and record["data"]["generator_version"] == shapes.GENERATOR_VERSION
    assert set(record["stages"]) == {"tower", "blip", "vilt", "clip"} and record["training_seconds"] >= 0
    for name, cls in (("blip", transformers.BlipForConditionalGeneration),
                      ("vilt", transformers.ViltForQuestionAnswering), ("clip", transformers.CLIPModel)):
        model, processor = scene_models.load_scene_model(name, untrained)
        assert type(model) is cls and (untrained / name / "model.safetensors").is_file()
        assert processor.tokenizer is not None


def test_zero_training_steps_fail_the_floors(untrained):
    figures = json.loads((untrained / "training.json").read_text())["figures"]
    with pytest.raises(FloorError, match="below its floor"):
        check_floors(floor_figures(figures))


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(tmp_path, data_dir):
    args = ["--data-dir", str(data_dir), "--steps-scale", "0.01", "--only", "clip", *SMALL]
    for run in ("a", "b"):
        assert scene_models.main(["--out", str(tmp_path / run), *args]) == 0
    for part in ("tower", "clip"):
        first = (tmp_path / "a" / part / "model.safetensors").read_bytes()
        assert first == (tmp_path / "b" / part / "model.safetensors").read_bytes(), part


def test_tower_positions_start_smooth_and_are_trained_to_be_read():
    grid = scene_models.IMAGE_SIZE // scene_models.PATCH_SIZE
    pos = scene_models.sincos_positions(grid, 64)  # [P, d]
    assert pos.shape == (grid * grid, 64)
    sim = torch.nn.functional.normalize(pos, dim=-1) @ torch.nn.functional.normalize(pos, dim=-1).T
    assert sim[0, 1] > sim[0, 2] > sim[0, grid - 1] and sim[0, grid] > sim[0, 2 * grid]  # nearer: more alike
    tagger = scene_models.PatchTagger(scene_models.TrainConfig())
    assert torch.equal(tagger.vit.embeddings.position_embedding[0, 1:], pos)
    assert tagger.cell_row[grid + 2] == 1 and tagger.cell_column[grid + 2] == 2  # row-major, like the patches


def test_vilt_takes_patches_and_first_layers_from_the_tower_and_can_learn_them_slower():
    cfg = scene_models.TrainConfig(vilt_tower_lr_scale=0.0)
    tokenizer = scene_models.build_processors(["a red square", "how many circles are there?"])["vilt"].tokenizer
    vilt, tower = scene_models.build_vilt(cfg, tokenizer), scene_models.PatchTagger(cfg).vit
    names = scene_models.init_vilt_vision(vilt, tower)
    prefixes = ("vilt.embeddings.patch_embeddings.", "vilt.embeddings.position_embeddings",
                "vilt.embeddings.cls_token", *(f"vilt.encoder.layer.{i}." for i in range(cfg.vision_layers)))
    assert names == {n for n, _ in vilt.named_parameters() if n.startswith(prefixes)}
    query = vilt.vilt.encoder.layer[1].attention.attention.query.weight
    assert torch.equal(query, tower.encoder.layers[1].self_attn.qkv.weight[: cfg.width])
    before = {n: p.detach().clone() for n, p in vilt.named_parameters()}
    optimiser, _ = scene_models._optimiser(vilt, cfg, 10, cfg.lr, dict.fromkeys(names, cfg.vilt_tower_lr_scale))
    for p in vilt.parameters():
        p.grad = torch.ones_like(p)
    optimiser.step()
    changed = {n for n, p in vilt.named_parameters() if not torch.equal(p, before[n])}
    assert not changed & names and "vilt.encoder.layer.2.output.dense.weight" in changed


def test_held_out_scenes_render_exactly_as_the_files(tmp_path):
    shapes.generate_dataset(tmp_path, 6, seed=0, image_size=scene_models.IMAGE_SIZE)
    rendered = render_scene_set(range(6))
    scenes = {json.loads(line)["image"]: json.loads(line) for line in (tmp_path / "scenes.jsonl").open()}
    for name, pixels, record in zip(rendered.names, rendered.pixels, rendered.records):
        on_disk = np.asarray(Image.open(tmp_path / "Images" / name).convert("RGB"))
        assert np.array_equal(pixels.permute(1, 2, 0).numpy(), on_disk)
        assert record == scenes[name]


def test_caption_scoring_counts_synonyms_and_binding():
    record = {"objects": [{"colour": "purple", "shape": "circle"}, {"colour": "red", "shape": "cross"}]}
    assert named_pairs("A small violet disc left of a red plus sign .") == {("purple", "circle"), ("red", "cross")}
    assert caption_scores(["a violet disc and a big red plus sign"], [record]) == {"objects": 1.0, "colours": 1.0}
    assert caption_scores(["a red disc and a violet cross"], [record]) == {"objects": 0.0, "colours": 1.0}


def test_zero_shot_candidates_are_distinct_with_the_right_one_first():
    records = render_scene_set(range(30)).records
    for record, candidates in zip(records, zero_shot_candidates(records, 10)):
        assert len(candidates) == len(set(candidates)) == 10


def test_stand_in_scene_is_a_held_out_scene_in_smoke_only():
    from dldna.data.images import SAMPLE_IMAGES, sample_image, sample_scene_record
    from dldna.runtime import Runtime
    from dldna.scene_models.evaluate import held_out_sets

    smoke = Runtime(profile="smoke")
    test_names = set(held_out_sets().get("test").names)
    for name, sample in SAMPLE_IMAGES.items():
        record = sample_scene_record(name)
        assert record["image"] in test_names and len(record["objects"]) == sample.scene[0]
        assert sample_image(name, smoke, stand_in="scene").size == (scene_models.IMAGE_SIZE,) * 2
    assert sample_scene_record("coco_632") != sample_scene_record("coco_139")
    photo = sample_image("coco_632", Runtime(profile="full", offline=True), stand_in="scene")
    assert photo.size != (scene_models.IMAGE_SIZE,) * 2  # random full-size models: the photo
    with pytest.raises(ValueError, match="stand_in = 'video' is not allowed"):
        sample_image("coco_632", smoke, stand_in="video")


def test_near_misses_change_one_attribute_of_one_object():
    from dldna.scene_models.evaluate import describe, near_miss_captions

    record = {"objects": [{"colour": "red", "shape": "square"}, {"colour": "blue", "shape": "circle"}]}
    right, colour, shape = near_miss_captions(record)
    assert right == describe(record) == "a red square and a blue circle"
    assert colour == "an orange square and a blue circle" and shape == "a red circle and a blue circle"


def test_committed_weights_reach_their_floors():
    """The models the smoke profile loads, measured as the notebooks measure them."""
    from dldna.scene_models.evaluate import evaluate_all
    from dldna.weights import training_record

    record = training_record()
    figures = evaluate_all(scene_models.WEIGHTS_DIR, limit=128)
    check_floors(floor_figures(figures), params={"eval_scenes": 128})
    assert floor_figures(figures) == pytest.approx(floor_figures(record["figures"]), abs=0.02)
    assert record["data"]["generator_version"] == shapes.GENERATOR_VERSION
    assert record["data"]["images"] == scene_models.SCENE_IMAGES  # the split the figures are measured on
    assert record["training_seconds"] > 0 and record["command"].startswith("python -m dldna.scene_models")
    assert record["config"] == dataclasses.asdict(scene_models.TrainConfig())  # trained with today's recipe
