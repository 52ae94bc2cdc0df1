"""Section 10.5's cross-modal attention: masking, pairwise scoring (erratum 4), gradients, learning."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from dldna.chapter_10 import crossmodal_attention as cma
from dldna.chapter_10.losses import contrastive_loss
from dldna.chapter_10.training import RetrievalModel
from dldna.data.flickr8k import Flickr8kDataset as ReaderDataset
from dldna.runtime import Runtime, seed_everything

from test_training import CAPTIONS, assert_learns, batch_of

matplotlib.use("Agg")
SMOKE = Runtime(profile="smoke")
# Token-level scoring never uses the towers' pooled vectors (their LayerNorms), nor
# BertModel's pooler, which the loader builds and TextTower ignores.
UNUSED = ("image_tower.norm.", "text_tower.norm.", "text_tower.encoder.pooler.")


@pytest.fixture(scope="module")
def model_and_tokenizer():
    seed_everything(0)
    return cma.build_crossmodal_embedding(SMOKE, texts=CAPTIONS, dim=32)


def _padded(batch: int, length: int, real: list[int]) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(real)[:, None]  # [B, L] bool


def test_public_names():
    assert cma.Flickr8kDataset is ReaderDataset
    for name in ("CrossModalAttention", "HierarchicalCrossModalAttention", "CrossModalEmbedding",
                 "train_crossmodal_embedding", "generate_example"):  # fmt: skip
        assert callable(getattr(cma, name))


def test_cross_attention_shapes_and_weights():
    torch.manual_seed(0)
    layer = cma.CrossModalAttention(dim=16, num_heads=4)
    text, image = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
    out, weights = layer(text, image)
    assert out.shape == (2, 5, 16) and weights.shape == (2, 4, 5, 9)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 5))
    with pytest.raises(ValueError, match="divisible"):
        cma.CrossModalAttention(dim=16, num_heads=3)
    with pytest.raises(ValueError, match="pooled"):
        layer(text[:, 0], image)
    with pytest.raises(TypeError, match="torch.bool"):
        layer(text, image, torch.ones(2, 9))


def test_padded_keys_get_zero_weight_and_cannot_leak():
    torch.manual_seed(0)
    layer = cma.CrossModalAttention(dim=16, num_heads=2).eval()
    image, text = torch.randn(2, 4, 16), torch.randn(2, 6, 16)
    mask = _padded(2, 6, [3, 6])  # the first caption has 3 real words
    out, weights = layer(image, text, mask)  # patches read words
    assert torch.all(weights[0, :, :, 3:] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 4))
    changed = text.clone()
    changed[0, 3:] = 100.0  # garbage in the padding
    assert torch.allclose(layer(image, changed, mask)[0], out)


def test_all_pairs_equals_the_paired_computation():
    torch.manual_seed(0)
    layer = cma.CrossModalAttention(dim=16, num_heads=4).eval()
    queries, context = torch.randn(3, 5, 16), torch.randn(4, 7, 16)
    mask = _padded(4, 7, [7, 2, 5, 1])
    pairs = layer.all_pairs(queries, context, mask)  # [C, Q, Lq, D]
    for c in range(4):
        expected = layer(queries, context[c : c + 1].expand(3, -1, -1), mask[c : c + 1].expand(3, -1))[0]
        assert torch.allclose(pairs[c], expected, atol=1e-5)


def test_hierarchical_attention_levels():
    torch.manual_seed(0)
    block = cma.HierarchicalCrossModalAttention(dim=16, num_heads=2, dropout=0.0).eval()
    image, text = torch.randn(2, 9, 16), torch.randn(2, 6, 16)
    mask = _padded(2, 6, [4, 6])
    out = block(image, text, text_mask=mask)
    assert out.image.shape == out.image_context.shape == (2, 9, 16)
    assert out.text.shape == out.text_context.shape == (2, 6, 16)
    assert out.text_to_image_weights.shape == (2, 2, 6, 9)
    assert out.image_to_text_weights.shape == (2, 2, 9, 6)
    assert torch.all(out.image_to_text_weights[0, :, :, 4:] == 0)  # padded words are never read
    changed = text.clone()
    changed[0, 4:] = -50.0
    again = block(image, changed, text_mask=mask)
    for name in ("image", "image_context"):
        assert torch.allclose(getattr(again, name), getattr(out, name), atol=1e-5), name
    image_ctx, text_ctx = block.all_pairs(out.image, out.text, None, mask)
    assert image_ctx.shape == (2, 2, 9, 16) and text_ctx.shape == (2, 2, 6, 16)
    assert torch.allclose(image_ctx[1, 1], out.image_context[1], atol=1e-5)
    assert torch.allclose(text_ctx[0, 0], out.text_context[0], atol=1e-5)


def test_embedding_scores_every_image_against_every_caption(model_and_tokenizer):
    """Erratum 4: score(i, j) depends on image i and caption j only, not on fused self-similarity."""
    model, tokenizer = model_and_tokenizer
    assert isinstance(model, RetrievalModel)
    model.eval()
    images, ids, mask = batch_of(tokenizer, 4)
    with torch.no_grad():
        logits = model(images, ids, mask)
        assert logits.shape == (4, 4) and torch.isfinite(logits).all()
        alone = model(images[2:3], ids[1:2], mask[1:2])  # one image, one caption
        assert torch.allclose(alone[0, 0], logits[2, 1], atol=1e-5)
        swapped = model(images, ids[[1, 0, 2, 3]], mask[[1, 0, 2, 3]])
        assert torch.allclose(swapped[:, [1, 0, 2, 3]], logits, atol=1e-5)
    assert not torch.allclose(logits, logits.t())  # not a self-similarity matrix
    model.train()


def test_every_used_parameter_gets_a_gradient(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.zero_grad(set_to_none=True)
    contrastive_loss(model(*batch_of(tokenizer, 4))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith(UNUSED)]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_logit_scale_is_capped(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    fresh = cma.CrossModalEmbedding(model.image_tower, model.text_tower, cma.CrossModalConfig(num_heads=4))
    assert fresh.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        fresh.logit_scale.fill_(8.0)
    assert fresh.scale().item() == pytest.approx(100.0)
    assert fresh(*batch_of(tokenizer, 2)).abs().max() <= 100.0 + 1e-3


def test_caption_attention_map(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    images, ids, mask = batch_of(tokenizer, 2)
    maps = cma.caption_attention(model, images[0], ids[0], mask[0])
    n_real = int(mask[0].sum())
    side = 4  # SmallConvNet: 32 px -> 4 x 4 feature map
    assert maps.shape == (n_real, side, side)
    assert torch.allclose(maps.sum(dim=(1, 2)), torch.ones(n_real), atol=1e-5)

    from dldna.data.cache import CachedSplit

    split = CachedSplit(
        images=np.zeros((2, 32, 32, 3), dtype=np.uint8), image_names=["a.jpg", "b.jpg"],
        captions=CAPTIONS[:2], input_ids=ids, attention_mask=mask, image_index=torch.tensor([0, 1]),
    )  # fmt: skip
    fig = cma.plot_caption_attention(model, split, caption=1, tokenizer=tokenizer, max_words=4)
    assert len(fig.axes) == 5  # the image and four words, [CLS]/[SEP] skipped
    assert fig.axes[1].get_title() not in ("[CLS]", "[SEP]")
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.slow
def test_crossmodal_embedding_learns_retrieval(tmp_path):
    """Trained from scratch on a few hundred synthetic pairs, it beats chance on unseen images."""
    # Token-level scoring costs more per pair than a dot product: smaller batches (16 x 16
    # pairs per step) and fewer epochs keep it within the time of the dual-encoder check.
    result = assert_learns(cma.build_crossmodal_embedding, tmp_path, seed=0, epochs=12, batch_size=16)
    print(result)
