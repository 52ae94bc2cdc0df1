"""A tiny CLIP: shapes, gradients, independence of the towers, masking, training, zero-shot."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dldna.chapter_10.clip import (
    CLIP,
    PROMPT_TEMPLATES,
    CLIPConfig,
    TextTransformer,
    zero_shot_classifier,
    zero_shot_predict,
)
from dldna.chapter_10.losses import contrastive_loss

CFG = CLIPConfig(
    embed_dim=32,
    image_size=16,
    patch_size=8,
    vision_width=32,
    vision_layers=1,
    vision_heads=2,
    vocab_size=50,
    context_length=12,
    text_width=32,
    text_layers=2,
    text_heads=2,
)


def _batch(b=4, length=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 3, 16, 16, generator=g)
    ids = torch.randint(1, 50, (b, length), generator=g)
    mask = torch.ones(b, length, dtype=torch.long)
    mask[1, 5:] = 0  # a shorter caption, right-padded
    ids[1, 5:] = 0
    return images, ids, mask


def test_forward_shapes_temperature_and_gradients():
    torch.manual_seed(0)
    model = CLIP(CFG)
    images, ids, mask = _batch()
    logits = model(images, ids, mask)
    assert logits.shape == (4, 4) and torch.isfinite(logits).all()
    assert model.logit_scale.log_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.logit_scale.temperature == pytest.approx(0.07, rel=1e-6)
    assert model.encode_image(images).norm(dim=-1).tolist() == pytest.approx([1.0] * 4, abs=1e-5)
    contrastive_loss(logits).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with torch.no_grad():
        model.logit_scale.log_scale.fill_(10.0)
    assert model.scale.item() == pytest.approx(100.0)  # capped at max_logit_scale


def test_replacing_caption_j_changes_nothing_but_column_j():
    torch.manual_seed(0)
    model = CLIP(CFG).eval()
    images, ids, mask = _batch()
    with torch.no_grad():
        before = model(images, ids, mask)
        image_emb = model.encode_image(images)
        ids2 = ids.clone()
        ids2[2] = torch.randint(1, 50, (8,), generator=torch.Generator().manual_seed(9))
        after = model(images, ids2, mask)
        torch.testing.assert_close(model.encode_image(images), image_emb)
    others = [0, 1, 3]
    torch.testing.assert_close(after[:, others], before[:, others])
    assert not torch.allclose(after[:, 2], before[:, 2])


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_does_not_leak_into_text_embedding(pooling):
    torch.manual_seed(0)
    encoder = TextTransformer(
        vocab_size=50, context_length=12, width=32, heads=2, layers=2, pooling=pooling
    ).eval()
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [5, 6, 7, 8, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        out = encoder(ids, mask)
        ids_other_pad = ids.clone()
        ids_other_pad[0, 4:] = torch.tensor([31, 42])
        torch.testing.assert_close(encoder(ids_other_pad, mask), out)
        alone = encoder(ids[:1, :4])  # the same caption without any padding
    torch.testing.assert_close(out[0], alone[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="context_length"):
        encoder(torch.ones(1, 13, dtype=torch.long))


def test_tiny_clip_trains_on_cpu():
    torch.manual_seed(0)
    model = CLIP(CFG)
    images, ids, mask = _batch(b=8, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = contrastive_loss(model(images, ids, mask))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 1.0  # untrained: the pairs are not matched yet
    assert losses[-1] < 0.3 * losses[0]


class _Vocab:
    """A word-level tokenizer for the test: returns a Hugging Face-style dict."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def __call__(self, texts):
        rows = [
            [self.ids.setdefault(w, len(self.ids) + 1) for w in t.replace(".", "").split()] for t in texts
        ]
        length = max(map(len, rows))
        ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_zero_shot_classifier_and_predict():
    torch.manual_seed(0)
    model = CLIP(CFG).eval()
    tokenize = _Vocab()
    classes = ["cat", "dog", "bird"]
    classifier = zero_shot_classifier(model, classes, None, tokenize)
    assert classifier.shape == (3, 32)
    assert classifier.norm(dim=-1).tolist() == pytest.approx([1.0] * 3, abs=1e-5)
    # class "dog" by hand, one prompt at a time
    with torch.no_grad():
        per_prompt = [
            model.encode_text(tokenize([t.format("dog")])["input_ids"])[0] for t in PROMPT_TEMPLATES
        ]
    expected = F.normalize(torch.stack(per_prompt).mean(dim=0), dim=-1)
    torch.testing.assert_close(classifier[1], expected, rtol=1e-4, atol=1e-5)
    # tuple and bare-tensor tokenizer outputs are accepted too
    as_tuple = zero_shot_classifier(
        model, classes, ["a photo of a {}."], lambda t: tuple(tokenize(t).values())
    )
    as_tensor = zero_shot_classifier(model, classes, ["a photo of a {}."], lambda t: tokenize(t)["input_ids"])
    torch.testing.assert_close(as_tuple, as_tensor)
    probs = zero_shot_predict(model, torch.randn(5, 3, 16, 16), classifier)
    assert probs.shape == (5, 3)
    torch.testing.assert_close(probs.sum(dim=-1), torch.ones(5))
    with pytest.raises(ValueError, match="placeholder"):
        zero_shot_classifier(model, classes, ["a photo"], tokenize)


def test_custom_towers_need_a_known_feature_size():
    image_tower = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 24))
    text_tower = TextTransformer(vocab_size=50, context_length=12, width=16, heads=2, layers=1)
    model = CLIP(CFG, image_encoder=image_tower, text_encoder=text_tower, image_feature_dim=24)
    images, ids, mask = _batch()
    assert model(images, ids, mask).shape == (4, 4)
    with pytest.raises(ValueError, match="image_feature_dim"):
        CLIP(CFG, image_encoder=image_tower)
