"""The zero-shot evaluator: versions come from the checkpoint, loads are strict."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from dldna.chapter_10.mm.evaluate_models import (
    COLUMNS,
    TEST_CAPTIONS,
    evaluate_all_models,
    find_checkpoints,
    load_image_tensor,
    similarity_summary,
)
from dldna.chapter_10.mm.train_multimodal import (
    CheckpointError,
    ModelConfig,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from dldna.loaders import build_wordpiece_tokenizer


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tokenizer():
    return build_wordpiece_tokenizer(list(TEST_CAPTIONS) * 2 + ["a red circle left of a blue square"], vocab_size=150)


def tiny_model(version: str, tokenizer, mode: str = "faithful", seed: int = 0):
    bert = transformers.BertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    config = ModelConfig(
        version=version, mode=mode, dim=16, num_heads=2, image_grid=2, image_size=32, max_length=12,
        backbone={"name": "small_convnet", "channels": [8, 8, 8, 8, 8], "strides": [2, 2, 1, 2, 1]},
        text_encoder=bert.to_dict(),
    )  # fmt: skip
    torch.manual_seed(seed)
    return build_model(config).eval()


@pytest.fixture()
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


@pytest.fixture()
def model_dir(tmp_path, tokenizer):
    """v0 under its own name and v10_3 under a misleading one (the original would read '3')."""
    models = {"v0": tiny_model("v0", tokenizer), "v10_3": tiny_model("v10_3", tokenizer, seed=1)}
    save_checkpoint(models["v0"], tmp_path / "model_final_v0.pth", tokenizer)
    save_checkpoint(models["v10_3"], tmp_path / "model_final_v3.pth", tokenizer)
    return tmp_path, models


def expected_scores(model, tokenizer, image) -> list[float]:
    enc = tokenizer(list(TEST_CAPTIONS), padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    return model.score_matrix(load_image_tensor(image, 32), enc["input_ids"], enc["attention_mask"])[0].tolist()


def test_versions_come_from_the_checkpoint(model_dir, tokenizer, photo):
    folder, models = model_dir
    assert {v: p.name for v, p in find_checkpoints(folder).items()} == {
        "v0": "model_final_v0.pth",
        "v10_3": "model_final_v3.pth",
    }
    frame = evaluate_all_models(folder, photo, TEST_CAPTIONS, ["v0", "v10_3"])
    assert list(frame.columns) == list(COLUMNS)
    assert frame["model_version"].tolist() == ["v0", "v10_3"]
    for version, row in zip(("v0", "v10_3"), frame.itertuples()):
        # the trained weights were loaded, not a fresh random model
        assert row.all_similarities == pytest.approx(expected_scores(models[version], tokenizer, photo), abs=1e-3)
    fresh = tiny_model("v10_3", tokenizer, seed=7)
    assert frame["all_similarities"][1] != pytest.approx(expected_scores(fresh, tokenizer, photo), abs=1e-3)
    assert sorted(frame["similarity_ratio_rank"]) in ([1, 2], [1, 1])


def test_default_is_every_checkpoint_in_study_order(model_dir, photo):
    folder, _ = model_dir
    assert evaluate_all_models(folder, photo)["model_version"].tolist() == ["v0", "v10_3"]


def test_a_missing_version_names_what_is_there(model_dir, photo):
    folder, _ = model_dir
    with pytest.raises(FileNotFoundError, match=r"v3.*v10_3 \(model_final_v3\.pth\)"):
        evaluate_all_models(folder, photo, TEST_CAPTIONS, ["v3"])


def test_a_checkpoint_is_never_loaded_as_another_version(model_dir, tokenizer):
    folder, _ = model_dir
    with pytest.raises(CheckpointError, match="holds a model of version 'v10_3', not the requested 'v3'"):
        load_checkpoint(folder / "model_final_v3.pth", expected_version="v3")
    payload = torch.load(folder / "model_final_v3.pth", weights_only=True)
    with pytest.raises(RuntimeError, match="Unexpected key"):  # strict: v10_3's context layers have no place in v9
        tiny_model("v9", tokenizer).load_state_dict(payload["state_dict"], strict=True)


def test_inconsistent_or_duplicate_checkpoints_are_errors(model_dir, tokenizer, caplog):
    folder, models = model_dir
    payload = torch.load(folder / "model_final_v0.pth", weights_only=True)
    payload["version"] = "v9"  # says v9, but its config (and weights) are v0
    torch.save(payload, folder / "tampered.pth")
    with pytest.raises(CheckpointError, match="inconsistent"):
        read_checkpoint(folder / "tampered.pth")
    with caplog.at_level(logging.WARNING):
        assert "v9" not in find_checkpoints(folder)  # skipped with a warning
    assert "Skipping" in caplog.text

    torch.save({"model": "not ours"}, folder / "foreign.pth")
    assert set(find_checkpoints(folder)) == {"v0", "v10_3"}
    save_checkpoint(models["v0"], folder / "copy_of_v0.pth", tokenizer)
    with pytest.raises(CheckpointError, match="hold version 'v0'"):
        find_checkpoints(folder)


def test_similarity_summary_matches_the_original_table():
    # the original's v0 row: ratio 2.908, gap 10.155, trained well
    row = similarity_summary([5.322, 15.477, -4.509, -6.609, 2.107], TEST_CAPTIONS)
    assert row["best_caption"] == "A cat sleeping on a couch"
    assert row["similarity_ratio"] == pytest.approx(2.908, abs=1e-3)
    assert row["similarity_gap"] == pytest.approx(10.155, abs=1e-3)
    assert row["trained_well"] is True
    # all five equal (v10_2 in the original): not trained well here
    flat = similarity_summary([17.72] * 5, TEST_CAPTIONS)
    assert flat["trained_well"] is False and flat["similarity_ratio"] == 1.0 and flat["similarity_gap"] == 0.0
    assert similarity_summary([1.0, 0.0, -1.0, -2.0, -3.0], TEST_CAPTIONS)["similarity_ratio"] == math.inf


def test_bad_inputs(tmp_path, photo):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_all_models(tmp_path / "nothing", photo)
    with pytest.raises(FileNotFoundError, match="Test image"):
        load_image_tensor(tmp_path / "missing.png", 32)
    with pytest.raises(ValueError, match="expected_index"):
        evaluate_all_models(tmp_path, photo, ["only one"])
