"""Section 10.4's dual encoder: shapes, gradients, independence of the towers, temperature, learning."""

import math

import pytest
import torch

from dldna.chapter_10 import multimodal_embedding as mme
from dldna.chapter_10.encoders import ImageTower, SmallConvNet, TextTower
from dldna.data.flickr8k import Flickr8kDataset as ReaderDataset
from dldna.runtime import Runtime, seed_everything

from test_training import CAPTIONS, assert_learns, batch_of

SMOKE = Runtime(profile="smoke")
# BertModel's pooler (dense + tanh on [CLS]) is built by the loader but TextTower reads
# last_hidden_state, so no model here uses it; it can get no gradient.
UNUSED = ("text_tower.encoder.pooler.",)


@pytest.fixture(scope="module")
def model_and_tokenizer():
    seed_everything(0)
    return mme.build_multimodal_embedding(SMOKE, texts=CAPTIONS, dim=32)


def test_public_names():
    assert mme.Flickr8kDataset is ReaderDataset
    for name in ("MultimodalEmbedding", "contrastive_loss", "train_multimodal_embedding", "generate_example"):
        assert callable(getattr(mme, name))


def test_logits_are_batch_by_batch_and_embeddings_unit_length(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    images, ids, mask = batch_of(tokenizer, 4)
    logits = model(images, ids, mask)
    assert logits.shape == (4, 4) and torch.isfinite(logits).all()
    assert torch.allclose(model.encode_image(images).norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(model.encode_text(ids, mask).norm(dim=-1), torch.ones(4), atol=1e-5)
    # logits are cosine similarities times 1 / 0.07
    assert logits.abs().max() <= 1 / 0.07 + 1e-4


def test_every_parameter_gets_a_gradient(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.zero_grad(set_to_none=True)
    mme.contrastive_loss(model(*batch_of(tokenizer, 4))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith(UNUSED)]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_image_embedding_does_not_depend_on_the_captions(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.eval()
    images, ids, mask = batch_of(tokenizer, 4)
    other = tokenizer(["a yellow cross above a white square"], padding="max_length", max_length=ids.shape[1],
                      return_tensors="pt")  # fmt: skip
    ids2, mask2 = ids.clone(), mask.clone()
    ids2[2], mask2[2] = other["input_ids"][0], other["attention_mask"][0]
    with torch.no_grad():
        before, after = model(images, ids, mask), model(images, ids2, mask2)
    keep = [0, 1, 3]
    assert torch.equal(before[:, keep], after[:, keep])  # image i against caption j != 2: unchanged
    assert not torch.allclose(before[:, 2], after[:, 2])
    model.train()


def test_logit_scale_starts_at_one_over_007_and_is_capped(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    fresh = mme.MultimodalEmbedding(model.image_tower, model.text_tower)
    assert fresh.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert fresh.temperature == pytest.approx(0.07)
    with torch.no_grad():
        fresh.logit_scale.fill_(10.0)  # exp(10) = 22026 without the cap
    assert fresh.scale().item() == pytest.approx(100.0)
    logits = fresh(*batch_of(tokenizer, 3))
    assert logits.abs().max() <= 100.0 + 1e-3
    fresh.zero_grad()
    logits.sum().backward()
    assert fresh.logit_scale.grad.item() == 0.0  # above the cap it stops moving


def test_bad_towers_are_refused(model_and_tokenizer):
    model, _ = model_and_tokenizer
    with pytest.raises(ValueError, match="different widths"):
        mme.MultimodalEmbedding(ImageTower(SmallConvNet(), 16), model.text_tower)
    with pytest.raises(TypeError, match="ImageTower"):
        mme.MultimodalEmbedding(SmallConvNet(), model.text_tower)
    with pytest.raises(ValueError, match="init_temperature"):
        mme.MultimodalEmbeddingConfig(init_temperature=0.001)
    assert isinstance(model.text_tower, TextTower)


@pytest.mark.slow
def test_dual_encoder_learns_retrieval(tmp_path):
    """Trained from scratch on a few hundred synthetic pairs, it beats chance on unseen images."""
    result = assert_learns(mme.build_multimodal_embedding, tmp_path, seed=0)
    print(result)
