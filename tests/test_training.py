"""The shared retrieval training loop: history, checkpoints, divergence, evaluation plumbing."""

import math

import matplotlib
import pytest
import torch

from dldna.chapter_10 import examples as retrieval_examples
from dldna.chapter_10 import training
from dldna.chapter_10.crossmodal_attention import build_crossmodal_embedding
from dldna.chapter_10.losses import contrastive_loss
from dldna.chapter_10.multimodal_embedding import MultimodalEmbedding, build_multimodal_embedding
from dldna.data.flickr8k import read_captions
from dldna.data.prepare import CaptionData
from dldna.data.shapes import generate_dataset
from dldna.runtime import Runtime, seed_everything

matplotlib.use("Agg")
SMOKE = Runtime(profile="smoke")

# ------------------------------------------------------------------ shared test helpers
# (imported by test_multimodal_embedding.py and test_crossmodal_attention.py)

CAPTIONS = [
    "a red circle to the left of a blue square",
    "two shapes : a green star and a small white cross",
    "a large purple diamond on a gray background",
    "a yellow triangle above an orange circle",
    "a yellow cross above a white square",
]

#: The learning check: 240 synthetic images (192 to train on), seen at 32 px.
LEARN_IMAGES, LEARN_IMAGE_SIZE = 240, 32


def batch_of(tokenizer, n: int, size: int = 32, seed: int = 0):
    """``n`` random images and the first ``n`` of :data:`CAPTIONS`, tokenised with padding."""
    images = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    enc = tokenizer(CAPTIONS[:n], padding="max_length", max_length=16, return_tensors="pt")
    return images, enc["input_ids"], enc["attention_mask"]


def assert_learns(build, tmp_path, seed: int = 0, epochs: int = 20, batch_size: int = 32, lr: float = 1e-3) -> dict:
    """Train ``build(runtime, texts)``'s model from scratch on synthetic shapes; check held-out recall.

    The held-out test split (images never trained on, nor used to pick a checkpoint) must
    reach text->image Recall@1 of at least three times chance (1 / number of images).
    One thread: faster than two for these tiny tensors, and deterministic.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = generate_dataset(tmp_path / "shapes", LEARN_IMAGES, seed=seed, image_size=64)
        data = CaptionData.at(root, synthetic=True)
        seed_everything(seed)
        model, tokenizer = build(Runtime(profile="smoke", seed=seed), [c for _, c in read_captions(data.caption_file)])
        splits = training.cached_splits(data, tokenizer, LEARN_IMAGE_SIZE, seed=seed)
        config = training.TrainConfig(num_epochs=epochs, lr=lr, batch_size=batch_size, progress=False, seed=seed)
        history = training.fit(model, splits["train"], splits["val"], config, device="cpu")
        test = training.evaluate(model, splits["test"], "cpu")
    finally:
        torch.set_num_threads(threads)
    chance = 1 / splits["test"].num_images
    result = {"t2i_R@1": test["t2i_R@1"], "i2t_R@1": test["i2t_R@1"], "chance": chance,
              "train_seconds": float(history["seconds"].sum())}  # fmt: skip
    assert test["t2i_R@1"] >= 3 * chance, result
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = generate_dataset(tmp_path_factory.mktemp("shapes") / "d", 30, seed=3, image_size=64)
    return CaptionData.at(root, synthetic=True)


@pytest.fixture(scope="module")
def texts(data):
    return [c for _, c in read_captions(data.caption_file)]


@pytest.fixture(scope="module")
def model_and_splits(data, texts):
    seed_everything(0)
    model, tokenizer = build_multimodal_embedding(SMOKE, texts=texts, dim=32)
    return model, tokenizer, training.cached_splits(data, tokenizer, image_size=32, seed=0)


def test_cached_splits_are_image_level(model_and_splits):
    _, _, splits = model_and_splits
    names = [set(s.image_names) for s in splits.values()]
    assert sum(len(n) for n in names) == 30
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert all(len(s) == 5 * s.num_images for s in splits.values())


def test_fit_returns_history_and_saves_best_checkpoint(model_and_splits, texts, tmp_path):
    model, _, splits = model_and_splits
    path = tmp_path / "ckpt" / "best.pt"
    config = training.TrainConfig(
        num_epochs=2, lr=1e-3, batch_size=8, progress=False, checkpoint_path=str(path), monitor="val_loss",
        lr_schedule="cosine", warmup_steps=2,
    )  # fmt: skip
    history = training.fit(model, splits["train"], splits["val"], config, device="cpu")
    expected = {"epoch", "train_loss", "val_loss", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5",
                "t2i_R@10", "mean_recall", "temperature", "lr", "seconds", "pairs_per_s"}  # fmt: skip
    assert expected <= set(history.columns)
    assert history["epoch"].tolist() == [1, 2]
    assert history.drop(columns="epoch").map(math.isfinite).all().all()
    assert history["lr"].iloc[-1] < 1e-4  # the cosine schedule ends near zero
    assert path.is_file() and not list(path.parent.glob("*.tmp"))

    best_epoch = int(history["val_loss"].idxmin()) + 1
    seed_everything(1)
    fresh, _ = build_multimodal_embedding(SMOKE, texts=texts, dim=32)
    meta = training.load_checkpoint(path, fresh)
    assert meta["epoch"] == best_epoch and meta["model_class"] == "MultimodalEmbedding"
    assert meta["model_config"]["init_temperature"] == pytest.approx(0.07)
    assert meta["train_config"]["monitor"] == "val_loss"
    # the saved weights are the best epoch's: evaluated again, they give that epoch's numbers
    again = training.evaluate(fresh, splits["val"], "cpu", batch_size=8, seed=config.seed)
    assert again["loss"] == pytest.approx(history["val_loss"].iloc[best_epoch - 1], abs=1e-5)
    assert again["mean_recall"] == pytest.approx(history["mean_recall"].iloc[best_epoch - 1], abs=1e-6)


def test_checkpoint_of_another_architecture_is_refused(model_and_splits, texts, tmp_path):
    model, _, _ = model_and_splits
    path = training.save_checkpoint(tmp_path / "dual.pt", model, epoch=1)
    other, _ = build_crossmodal_embedding(SMOKE, texts=texts, dim=32)
    with pytest.raises(ValueError, match="MultimodalEmbedding"):
        training.load_checkpoint(path, other)


def test_nan_loss_raises_a_clear_error(model_and_splits, data, texts):
    _, tokenizer, splits = model_and_splits
    broken, _ = build_multimodal_embedding(SMOKE, texts=texts, dim=32)
    with torch.no_grad():
        broken.text_tower.proj.weight.fill_(float("nan"))
    config = training.TrainConfig(num_epochs=1, batch_size=8, progress=False, check_every=1)
    with pytest.raises(training.TrainingDivergedError, match="learning rate"):
        training.fit(broken, splits["train"], splits["val"], config, device="cpu")


def test_any_iterable_of_batches_trains(model_and_splits):
    model, _, splits = model_and_splits
    batches = list(splits["train"].batches(8, generator=torch.Generator().manual_seed(0)))
    history = training.train_retrieval_model(model, batches, splits["val"], num_epochs=1, lr=1e-4, device="cpu",
                                             progress=False)  # fmt: skip
    assert len(history) == 1 and math.isfinite(history["train_loss"][0])


def test_bad_arguments_get_clear_errors(model_and_splits):
    model, _, splits = model_and_splits
    with pytest.raises(TypeError, match="CachedSplit"):
        training.fit(model, splits["train"], [(1, 2, 3)], training.TrainConfig(progress=False), device="cpu")
    with pytest.raises(TypeError, match="Unknown training options"):
        training.train_retrieval_model(model, splits["train"], splits["val"], epochs=3)
    with pytest.raises(ValueError, match="lr_schedule"):
        training.TrainConfig(lr_schedule="linear-ish")
    with pytest.raises(ValueError, match="mixed_precision"):
        training.Speedups.for_device(torch.device("cpu"), mixed_precision=True)


def test_score_all_in_blocks_equals_one_block(model_and_splits, texts):
    model, _, splits = model_and_splits
    full = training.retrieval_scores(model, splits["val"], "cpu")
    cross, tokenizer = build_crossmodal_embedding(SMOKE, texts=texts, dim=32)
    for m in (model, cross):
        m.eval()
        image_rep, text_rep = training.encode_split(m, splits["val"], "cpu", batch_size=4)
        with torch.no_grad():
            whole = m.score(image_rep, text_rep)
            m.pairs_per_block = 7
            blocked = m.score_all(image_rep, text_rep)
        assert torch.allclose(whole, blocked, atol=1e-5)
    assert full.shape == (splits["val"].num_images, len(splits["val"]))


def test_validation_loss_is_read_off_the_score_matrix():
    scores = torch.randn(4, 8)
    image_index = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = training.batch_loss_from_scores(scores, image_index, 4, torch.Generator().manual_seed(0))
    # one caption per image: whichever is picked, the loss is a contrastive loss of a 4x4 block
    candidates = [
        contrastive_loss(scores[:, [a, b, c, d]]).item() for a in (0, 1) for b in (2, 3) for c in (4, 5) for d in (6, 7)
    ]
    assert any(loss == pytest.approx(c, rel=1e-5) for c in candidates)


def test_trim_padding_keeps_every_real_token():
    # a column is dropped only when it is padding in every row
    ids = torch.tensor([[2, 5, 3, 0, 0, 0], [2, 5, 6, 7, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    short_ids, short_mask = training.trim_padding(ids, mask)
    assert short_ids.tolist() == [[2, 5, 3, 0, 0], [2, 5, 6, 7, 3]]
    assert short_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_no_weight_decay_on_vectors_and_temperature(model_and_splits):
    model, _, _ = model_and_splits
    optimizer = training.make_optimizer(model, lr=1e-3, weight_decay=0.1)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert any(p is model.logit_scale for p in plain["params"])
    assert all(p.ndim >= 2 for p in decayed["params"])


def test_generate_example_tables_and_figure(model_and_splits):
    model, tokenizer, splits = model_and_splits
    examples = retrieval_examples.generate_example(model, splits["test"], k=3, n_examples=2)
    assert len(examples.image_to_text) == 6 and len(examples.text_to_image) == 6
    assert examples.image_to_text["probability"].between(0, 1).all()
    assert examples.image_to_text.groupby("image")["probability"].apply(lambda p: p.is_monotonic_decreasing).all()
    assert examples.text_to_image["correct"].dtype == bool
    assert len(examples.figure.axes) == 2 * 4
    free = retrieval_examples.generate_example(model, splits["test"], tokenizer, k=2, queries=["a red circle"])
    assert free.text_to_image["query"].unique().tolist() == ["a red circle"]
    with pytest.raises(ValueError, match="tokenizer"):
        retrieval_examples.generate_example(model, splits["test"], queries=["a red circle"])
    import matplotlib.pyplot as plt

    plt.close("all")


def test_fit_refuses_a_model_without_the_retrieval_interface(model_and_splits):
    _, _, splits = model_and_splits
    with pytest.raises(TypeError, match="RetrievalModel"):
        training.fit(torch.nn.Linear(2, 2), splits["train"], splits["val"], training.TrainConfig(progress=False))


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [("num_epochs", 1.7, "positive integer"), ("lr", float("inf"), "finite number"),
     ("grad_clip", float("inf"), "finite number"), ("weight_decay", float("nan"), "finite number"),
     ("batch_size", 0, "positive integer")],
)  # fmt: skip
def test_train_config_refuses_non_finite_and_fractional_settings(field, value, rule):
    with pytest.raises(ValueError, match=rf"{field} = .*{rule}"):
        training.TrainConfig(**{field: value})


def test_fit_announces_its_expected_time_once(model_and_splits):
    import io
    import logging

    from dldna import timing

    model, _, splits = model_and_splits
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    timing.logger.addHandler(handler)
    level, timing.logger.level = timing.logger.level, logging.INFO
    try:
        config = training.TrainConfig(num_epochs=3, batch_size=4, lr=1e-3, progress=False)
        training.fit(model, splits["train"], splits["val"], config)
    finally:
        timing.logger.removeHandler(handler)
        timing.logger.level = level
    lines = stream.getvalue().splitlines()
    total = 3 * training.steps_per_epoch(splits["train"], 4)
    assert len(lines) == 1 and lines[0].startswith("Expected time for training on cpu: about "), lines
    assert f"({total} steps x " in lines[0]
