"""The ablation harness: the matching model in both modes, training, resume, divergence."""

from __future__ import annotations

import json
import re
from pathlib import Path
import time

import pandas as pd
import pytest
import torch
import transformers

from dldna import checkpoint
from dldna.chapter_10 import training
from dldna.chapter_10.mm.features import ENCODER_CACHE_FORMAT
from dldna.chapter_10.mm import run as run_module
from dldna.chapter_10.mm import train_multimodal as tm
from dldna.chapter_10.mm.run import eval_subset
from dldna.chapter_10.mm.cross_attention import VERSIONS, UnknownVersionError
from dldna.chapter_10.mm.train_multimodal import (
    MODES,
    CheckpointError,
    ModelConfig,
    build_model,
    chance_recall,
    contrastive_loss,
    get_cross_attention,
    load_checkpoint,
    run_training,
    save_checkpoint,
)
from dldna.data.cache import cached_split
from dldna.data.flickr8k import Flickr8kDataset
from dldna.data.shapes import generate_dataset
from dldna.loaders import build_wordpiece_tokenizer

TEXTS = [
    "a red circle",
    "two blue squares left of a green star",
    "a small white cross above a purple diamond",
    "A cat sleeping on a couch",
]
SMALL_CNN = {"name": "small_convnet", "channels": [8, 8, 16, 16, 16], "strides": [2, 2, 1, 2, 1]}
TINY_RUN = dict(
    dim=16, num_heads=2, image_grid=2, batch_size=8, image_size=32, max_length=16, eval_images=4,
    profile="smoke", progress=False,
)  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors gain nothing from threads; on a shared 2-core machine they contend."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tokenizer():
    return build_wordpiece_tokenizer(TEXTS * 3, vocab_size=120)


def tiny_config(version: str, mode: str, tokenizer) -> ModelConfig:
    bert = transformers.BertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    return ModelConfig(
        version=version, mode=mode, dim=16, num_heads=2, image_grid=2, image_size=32, max_length=16,
        backbone=SMALL_CNN, text_encoder=bert.to_dict(),
    )  # fmt: skip


def tiny_batch(tokenizer, n: int = 3):
    torch.manual_seed(0)
    images = torch.randn(n, 3, 32, 32)
    enc = tokenizer(TEXTS[:n], padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    return images, enc["input_ids"], enc["attention_mask"]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("shapes") / "d", 40, seed=3, image_size=32)


def data_args(root):
    return dict(image_dir=root / "Images", caption_file=root / "captions.txt")


# ---------------------------------------------------------------------- the model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_trains_in_both_modes(version, mode, tokenizer):
    torch.manual_seed(0)
    model = build_model(tiny_config(version, mode, tokenizer)).train()
    images, ids, mask = tiny_batch(tokenizer)
    logits = model(images, ids, mask)
    assert logits.shape == (3, 3) and torch.isfinite(logits).all()
    contrastive_loss(logits).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{version}/{mode}: {name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{version}/{mode}: {name} has a non-finite gradient"
        if mode == "tokens":
            assert p.grad.abs().sum() > 0, f"{version}/tokens: {name} got an all-zero gradient"
    scores = model.score_matrix(images, ids, mask)
    assert scores.shape == (3, 3) and torch.isfinite(scores).all()


def test_faithful_attention_is_a_copy(tokenizer):
    """Erratum 3: over a single key every softmax weight is 1, so queries and keys learn nothing."""
    images, ids, mask = tiny_batch(tokenizer)
    grads = {}
    for mode in MODES:
        torch.manual_seed(0)
        model = build_model(tiny_config("v8", mode, tokenizer)).train()
        contrastive_loss(model(images, ids, mask)).backward()
        ca = model.cross_attention
        grads[mode] = ca.to_q.weight.grad.abs().sum() + ca.to_k.weight.grad.abs().sum()
    # exactly zero in exact arithmetic; the fused attention kernel leaves rounding noise
    assert grads["faithful"] < 1e-4 * grads["tokens"]
    assert grads["tokens"] > 0


def test_faithful_v5_leaks_the_pairing(tokenizer):
    """v5 mixes both length-1 inputs half and half, so fused image == fused text.

    Every (image, caption) pair then scores the same, yet the training logits, whose
    diagonal fuses each pair with itself, rank every matching pair first before any
    training: the in-batch accuracy of the original is perfect and meaningless.
    """
    torch.manual_seed(0)
    model = build_model(tiny_config("v5", "faithful", tokenizer)).eval()
    batch = tiny_batch(tokenizer)
    scores = model.score_matrix(*batch)
    assert torch.allclose(scores, torch.full_like(scores, model.scale().item()), atol=1e-4)
    with torch.no_grad():
        logits = model(*batch)
    assert torch.equal(logits.argmax(dim=1), torch.arange(3))


def test_faithful_v0_swaps_the_roles(tokenizer):
    """v0 over length-1 sequences copies: the fused image vector of pair (i, i) is caption i's."""
    torch.manual_seed(0)
    model = build_model(tiny_config("v0", "faithful", tokenizer)).eval()
    batch = tiny_batch(tokenizer)
    with torch.no_grad():
        logits = model(*batch)
    assert torch.allclose(logits, model.score_matrix(*batch).t(), atol=1e-5)


def test_bad_configuration_errors(tokenizer):
    with pytest.raises(ValueError, match="mode"):
        build_model(tiny_config("v0", "pooled", tokenizer))
    with pytest.raises(UnknownVersionError, match="v10_3"):
        build_model(tiny_config("v12", "tokens", tokenizer))
    model = build_model(tiny_config("v0", "tokens", tokenizer))
    with pytest.raises(ValueError, match="dim"):
        tm.ImageTextMatchingModel(get_cross_attention("v0", {"dim": 8}), model.image_tower, model.text_tower)


def test_registry_error_lists_names():
    with pytest.raises(UnknownVersionError) as info:
        get_cross_attention("v99", {"dim": 16})
    assert all(v in str(info.value) for v in ("v0", "v10_3", "v11"))
    with pytest.raises(UnknownVersionError, match="v10_6"):
        run_training(["v0", "v99"], 1, 1e-3, "nowhere/Images", "nowhere/captions.txt")


def test_chance_recall_by_hand():
    assert chance_recall(4, 1, 1) == pytest.approx(0.25)
    assert chance_recall(3, 2, 1) == pytest.approx(1 / 3)  # 2 of 6 captions right; 1 of 3 images
    assert chance_recall(10, 1, 10) == pytest.approx(1.0)


# --------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_is_exact(tokenizer, tmp_path):
    torch.manual_seed(1)
    model = build_model(tiny_config("v10_3", "tokens", tokenizer)).eval()
    path = save_checkpoint(model, tmp_path / "model_final_v3.pth", tokenizer)  # misleading name on purpose
    loaded, tok, payload = load_checkpoint(path)
    assert loaded.version == payload["version"] == "v10_3" and loaded.mode == "tokens"
    batch = tiny_batch(tokenizer)
    assert torch.equal(model.score_matrix(*batch), loaded.score_matrix(*batch))
    assert tok(TEXTS[1])["input_ids"] == tokenizer(TEXTS[1])["input_ids"]
    with pytest.raises(CheckpointError, match="v10_3.*not the requested 'v3'"):
        load_checkpoint(path, expected_version="v3")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one(tokenizer, tmp_path, monkeypatch):
    """A write that runs out of space names the checkpoint; the one saved before survives."""
    torch.manual_seed(1)
    model = build_model(tiny_config("v0", "tokens", tokenizer)).eval()
    path = save_checkpoint(model, tmp_path / "model_final_v0.pth", tokenizer)
    before = path.read_bytes()
    real_save = torch.save

    def save_to_full_disk(obj, f, **kwargs):  # the kernel's own ENOSPC, from /dev/full
        with open("/dev/full", "wb") as full:
            real_save(obj, full, **kwargs)

    monkeypatch.setattr(torch, "save", save_to_full_disk)
    with pytest.raises(OSError, match=f"No space left on the device while writing {re.escape(str(path))}"):
        save_checkpoint(model, path, tokenizer)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left


def test_strict_load_rejects_another_version(tokenizer):
    torch.manual_seed(0)
    v9 = build_model(tiny_config("v9", "tokens", tokenizer))
    v10_3 = build_model(tiny_config("v10_3", "tokens", tokenizer))
    with pytest.raises(RuntimeError, match="Missing key"):
        v10_3.load_state_dict(v9.state_dict(), strict=True)


def test_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model_final_v0.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="is not a .*itm-checkpoint.* checkpoint"):
        load_checkpoint(path)


def test_frozen_encoders_give_the_same_scores_as_the_full_model(dataset_dir, tokenizer):
    """Training on cached encoder outputs is exact: the assembled model scores raw inputs identically."""
    torch.manual_seed(0)
    config = tiny_config("v9", "tokens", tokenizer)
    reference = build_model(config)
    backbone, bert = reference.image_tower.backbone, reference.text_tower.encoder
    dataset = Flickr8kDataset(**data_args(dataset_dir), tokenizer=tokenizer, max_length=16, images=None)
    split = cached_split(dataset, 32)
    features = tm.precompute_features(split, backbone, bert)
    torch.manual_seed(5)
    feature_model = build_model(
        config, backbone=tm.FeatureMapInput(backbone.out_channels), text_encoder=tm.HiddenStateInput(bert.config)
    )
    full = tm.attach_encoders(feature_model, backbone, bert)
    small, small_features = eval_subset(split, 5, 2), eval_subset(features, 5, 2)
    expected = feature_model.score_matrix(
        small_features.image_batch(range(5)), small_features.input_ids, small_features.attention_mask
    )
    got = full.score_matrix(small.image_batch(range(5)), small.input_ids, small.attention_mask)
    assert expected.shape == (5, 10)
    assert torch.allclose(expected, got, atol=1e-4)


# ---------------------------------------------------------------------- run_training


def test_run_writes_rows_and_checkpoints(dataset_dir, tmp_path):
    frame = run_training(
        ["v0", "v10_3"], 1, 1e-3, **data_args(dataset_dir), mode="faithful", output_dir=tmp_path, **TINY_RUN
    )
    assert frame["version"].tolist() == ["v0", "v10_3"]
    assert set(frame["status"]) == {"ok"}
    for column in ("params", "train_loss", "val_loss", "R@1", "R@5", "R@10", "sec_per_epoch", "mode", "seed"):
        assert column in frame.columns
    assert len(frame["train_loss"][0]) == 1 and frame["params"].tolist()[0] == 0
    assert ((frame["R@1"] >= 0) & (frame["R@1"] <= frame["R@10"])).all()
    run_dir = tmp_path / "faithful" / "seed0"
    row = json.loads((run_dir / "result_v10_3.json").read_text())
    assert row["version"] == "v10_3" and row["checkpoint"] == "model_final_v10_3.pth"
    assert load_checkpoint(run_dir / "model_final_v10_3.pth", expected_version="v10_3")[0].mode == "faithful"
    assert not list(run_dir.glob("*.tmp"))


def test_interrupted_run_resumes_where_it_stopped(dataset_dir, tmp_path, monkeypatch):
    real_fit, calls = run_module.fit, []

    def crashing_fit(model, *args, **kwargs):
        calls.append(model.version)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(run_module, "fit", crashing_fit)
    versions = ["v0", "v2", "v9", "v11"]
    with pytest.raises(KeyboardInterrupt):
        run_training(versions, 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    done = sorted(p.name for p in (tmp_path / "tokens" / "seed0").glob("result_*.json"))
    assert done == ["result_v0.json", "result_v2.json"]
    first = json.loads((tmp_path / "tokens" / "seed0" / "result_v2.json").read_text())

    calls.clear()
    frame = run_training(versions, 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    assert calls == ["v9", "v11"]
    assert frame["version"].tolist() == versions and set(frame["status"]) == {"ok"}
    assert frame.loc[1, "train_loss"] == first["train_loss"]

    calls.clear()  # other settings: nothing is reused
    run_training(["v0"], 2, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    assert calls == ["v0"]


def test_nan_loss_marks_one_version_diverged(dataset_dir, tmp_path, monkeypatch):
    real_loss, real_build, current = training.contrastive_loss, run_module.build_model, {}

    def build(config, **kwargs):
        current["version"] = config.version
        return real_build(config, **kwargs)

    def poisoned_loss(logits, *args, **kwargs):
        loss = real_loss(logits, *args, **kwargs)
        return loss * float("nan") if current.get("version") == "v1" else loss

    monkeypatch.setattr(run_module, "build_model", build)
    monkeypatch.setattr(training, "contrastive_loss", poisoned_loss)
    frame = run_training(["v0", "v1", "v2"], 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    assert frame["status"].tolist() == ["ok", "diverged", "ok"]
    diverged = frame.set_index("version").loc["v1"]
    assert "epoch 1, step" in diverged["stopped"] and pd.isna(diverged["R@1"])
    run_dir = tmp_path / "tokens" / "seed0"
    assert not (run_dir / "model_final_v1.pth").exists() and (run_dir / "model_final_v2.pth").exists()
    assert json.loads((run_dir / "result_v1.json").read_text())["status"] == "diverged"


def test_same_seed_same_numbers(dataset_dir, tmp_path):
    """Same seed -> same split, same initial weights, same batches: bitwise equal on CPU."""
    kwargs = dict(**data_args(dataset_dir), freeze_encoders=True, pretrain_epochs=1, **TINY_RUN)
    a = run_training(["v9"], 2, 1e-3, output_dir=tmp_path / "a", **kwargs)
    b = run_training(["v9"], 2, 1e-3, output_dir=tmp_path / "b", **kwargs)
    for column in ("train_loss", "val_loss", "R@1", "R@10", "i2t_R@5"):
        assert a.loc[0, column] == b.loc[0, column]
    c = run_training(["v9"], 2, 1e-3, output_dir=tmp_path / "c", seed=1, **kwargs)
    assert c.loc[0, "train_loss"] != a.loc[0, "train_loss"]


@pytest.mark.slow
def test_smoke_run_of_all_versions_in_both_modes(dataset_dir, tmp_path):
    """All 17 versions x 2 modes, tiny: the harness must stay under 3 minutes."""
    from dldna.chapter_10.mm.evaluate_models import evaluate_all_models

    start = time.perf_counter()
    for mode in MODES:
        frame = run_training(VERSIONS, 1, 1e-3, **data_args(dataset_dir), mode=mode, output_dir=tmp_path, **TINY_RUN)
        assert frame["version"].tolist() == list(VERSIONS)
        assert set(frame["status"]) == {"ok"}
    image = torch.zeros(32, 32, 3, dtype=torch.uint8).numpy()
    from PIL import Image

    checked = evaluate_all_models(tmp_path / "faithful" / "seed0", Image.fromarray(image))
    assert checked["model_version"].tolist() == list(VERSIONS)
    elapsed = time.perf_counter() - start
    print(f"smoke run of {len(VERSIONS)} versions x {len(MODES)} modes: {elapsed:.1f} s")
    assert elapsed < 180


# ------------------------------------------------------------- one training stack


def test_the_matching_model_is_a_retrieval_model_trained_by_fit(tokenizer):
    """Both modes go through the chapter's loop: its optimizer groups leave the temperature
    and every norm and bias undecayed (the old ablation loop decayed them)."""
    for mode in MODES:
        model = build_model(tiny_config("v9", mode, tokenizer))
        assert isinstance(model, training.RetrievalModel)
        optimizer = training.make_optimizer(model, lr=1e-3, weight_decay=0.01)
        names = {id(p): n for n, p in model.named_parameters()}
        undecayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
        assert "logit_scale_module.log_scale" in undecayed
        norms = {n for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
        assert norms and all(f"{n}.weight" in undecayed for n in norms)


def test_fit_trains_the_matching_model_with_its_own_logits(dataset_dir, tokenizer):
    """fit's history has the retrieval columns and the original's in-batch accuracy."""
    torch.manual_seed(0)
    model = build_model(tiny_config("v9", "faithful", tokenizer))
    dataset = Flickr8kDataset(**data_args(dataset_dir), tokenizer=tokenizer, max_length=16, images=None)
    split = cached_split(dataset, 32)
    config = training.TrainConfig(num_epochs=1, lr=1e-3, batch_size=8, progress=False, in_batch_metrics=True)
    history = training.fit(model, split, eval_subset(split, 8, 1), config)
    assert {"train_loss", "val_loss", "val_batch_acc", "i2t_R@1", "t2i_R@10"} <= set(history.columns)
    assert 0 <= history["val_batch_acc"].iloc[0] <= 1


# ------------------------------------------------------------------------ faults


def test_resume_retrains_a_version_whose_checkpoint_is_damaged(dataset_dir, tmp_path, caplog):
    run_training(["v0", "v2"], 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    ckpt = tmp_path / "tokens" / "seed0" / "model_final_v0.pth"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    with caplog.at_level("WARNING"):
        frame = run_training(["v0", "v2"], 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    assert "model_final_v0.pth has 1000 bytes" in caplog.text and "training that version again" in caplog.text
    assert set(frame["status"]) == {"ok"}
    assert load_checkpoint(ckpt, expected_version="v0")[0].version == "v0"  # rewritten whole


def test_a_result_file_that_is_not_an_object_is_retrained(dataset_dir, tmp_path, caplog):
    run_training(["v0"], 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    (tmp_path / "tokens" / "seed0" / "result_v0.json").write_text("[]")
    with caplog.at_level("WARNING"):
        frame = run_training(["v0"], 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    assert "holds a JSON list" in caplog.text and frame["status"].tolist() == ["ok"]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (dict(lr=float("inf")), "lr = inf"),
        (dict(grad_clip=float("inf")), "grad_clip = inf"),
        (dict(epochs=1.7), "epochs = 1.7"),
        (dict(lr=float("nan"), batch_size=1), "batch_size = 1"),
    ],
)
def test_bad_settings_are_refused_before_any_work(dataset_dir, tmp_path, settings, named):
    epochs, lr = settings.pop("epochs", 1), settings.pop("lr", 1e-3)
    with pytest.raises(ValueError, match="Invalid ablation settings") as info:
        run_training(["v0"], epochs, lr, **data_args(dataset_dir), output_dir=tmp_path, **{**TINY_RUN, **settings})
    assert named in str(info.value)
    assert not (tmp_path / "tokens").exists()


def test_diverged_results_are_written_with_finite_numbers(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "contrastive_loss", lambda logits, *a, **k: logits.sum() * float("inf"))
    frame = run_training(["v0"], 1, 1e-3, **data_args(dataset_dir), output_dir=tmp_path, **TINY_RUN)
    assert frame["status"].tolist() == ["diverged"]
    text = (tmp_path / "tokens" / "seed0" / "result_v0.json").read_text()
    assert json.loads(text)["status"] == "diverged" and "Infinity" not in text and "NaN" not in text


def test_a_damaged_encoder_cache_is_named_and_rebuilt(dataset_dir, tmp_path, caplog):
    kwargs = dict(**data_args(dataset_dir), freeze_encoders=True, pretrain_epochs=1, output_dir=tmp_path, **TINY_RUN)
    first = run_training(["v9"], 1, 1e-3, **kwargs)
    (cache,) = (tmp_path / "encoders").glob("seed0-*.pth")
    cache.write_bytes(cache.read_bytes()[:500])
    with caplog.at_level("WARNING"):
        again = run_training(["v9"], 1, 1e-3, resume=False, **kwargs)
    assert f"The encoder cache {cache} is damaged" in caplog.text
    assert again.loc[0, "train_loss"] == first.loc[0, "train_loss"]  # rebuilt to the same weights
    assert checkpoint.read(cache, ENCODER_CACHE_FORMAT)["format"] == ENCODER_CACHE_FORMAT
