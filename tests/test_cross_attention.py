"""Tests for the 17 cross-attention versions of the ablation study (tiny sizes, CPU)."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch

from dldna.chapter_10.mm import cross_attention as ca
from dldna.chapter_10.mm.cross_attention import (
    REGISTRY,
    VERSIONS,
    UnknownVersionError,
    available_versions,
    get_cross_attention,
    register,
)
from dldna.chapter_10.mm.cross_attention.primitives import shared_attention

DIM, HEADS, BATCH = 32, 4, 3
CONFIG = {"dim": DIM, "num_heads": HEADS}
SIZES = [(1, 1), (5, 7), (16, 3)]
EXPECTED = (
    "v0 v1 v2 v3 v4 v5 v6 v7 v8 v9 v10_1 v10_2 v10_3 v10_4 v10_5 v10_6 v11".split()
)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors gain nothing from threads, and on a shared 2-core machine two
    threads contend (measured 7x slower); restored afterwards for other modules."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_layer(version: str, *, train: bool = False, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layer = get_cross_attention(version, dict(CONFIG))
    return layer.train(train)


def make_inputs(ni: int, nt: int, *, padded: bool, seed: int = 1):
    """Random features; with ``padded`` every sample but the first loses some tokens."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(BATCH, ni, DIM, generator=g)
    text = torch.randn(BATCH, nt, DIM, generator=g)
    if not padded:
        return image, text, None, None
    image_len = torch.tensor([ni, max(1, ni - 2), max(1, ni // 2)])
    text_len = torch.tensor([nt, max(1, nt - 3), max(1, nt // 3)])
    image_mask = torch.arange(ni)[None, :] < image_len[:, None]  # [B, Ni]
    text_mask = torch.arange(nt)[None, :] < text_len[:, None]  # [B, Nt]
    return image, text, image_mask, text_mask


# ---------------------------------------------------------------- registry


def test_versions_are_the_17_in_natural_order():
    assert list(VERSIONS) == EXPECTED
    assert list(available_versions()) == EXPECTED
    assert set(REGISTRY) == set(EXPECTED)


@pytest.mark.parametrize("version", EXPECTED)
def test_version_attribute_matches_key_and_module(version):
    module = importlib.import_module(f"dldna.chapter_10.mm.cross_attention.{version}")
    assert module.CrossAttention is REGISTRY[version]
    assert module.CrossAttention.version == version
    assert module.CrossAttention.__doc__ and module.__doc__
    assert get_cross_attention(version).version == version  # default config builds too


def test_unknown_version_lists_known_names_in_order():
    with pytest.raises(UnknownVersionError) as info:
        get_cross_attention("v12")
    message = str(info.value)
    assert "v12" in message
    assert ", ".join(EXPECTED) in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(ValueError):  # the original's exception type still catches it
        get_cross_attention("10_3")


def test_bad_config_and_names_are_rejected_clearly():
    with pytest.raises(TypeError, match="does not accept"):
        get_cross_attention("v9", {"dim": 32, "heads": 4})
    with pytest.raises(TypeError, match="must be a dict"):
        get_cross_attention("v9", [("dim", 32)])
    with pytest.raises(ValueError, match="divisible by num_heads"):
        get_cross_attention("v8", {"dim": 30, "num_heads": 4})
    with pytest.raises(ValueError, match="look like"):
        register("version-12")
    with pytest.raises(ValueError, match="registered twice"):
        register("v9")(type("CrossAttention", (torch.nn.Module,), {}))
    assert REGISTRY["v9"].__module__.endswith(".v9")


def test_bad_inputs_get_clear_errors():
    layer = make_layer("v9")
    image, text = torch.randn(2, 4, DIM), torch.randn(2, 6, DIM)
    with pytest.raises(ValueError, match=r"unsqueeze\(1\)"):
        layer(image[:, 0], text)
    with pytest.raises(ValueError, match=r"\[B, N, 32\]"):
        layer(torch.randn(2, 4, DIM + 1), text)
    with pytest.raises(ValueError, match="same batch size"):
        layer(image, text[:1])
    with pytest.raises(TypeError, match="torch.bool"):
        layer(image, text, text_mask=torch.ones(2, 6))
    with pytest.raises(ValueError, match=r"\[2, 6\]"):
        layer(image, text, text_mask=torch.ones(2, 5, dtype=torch.bool))


# ---------------------------------------------------------------- every version


@pytest.mark.parametrize("version", EXPECTED)
def test_shapes_and_finite_outputs(version):
    layer = make_layer(version, train=True)
    for ni, nt in SIZES:
        for padded in (False, True):
            image, text, image_mask, text_mask = make_inputs(ni, nt, padded=padded)
            image_out, text_out = layer(image, text, image_mask, text_mask)
            assert image_out.shape == (BATCH, ni, DIM)
            assert text_out.shape == (BATCH, nt, DIM)
            assert torch.isfinite(image_out).all() and torch.isfinite(text_out).all()


@pytest.mark.parametrize("version", EXPECTED)
def test_every_parameter_gets_a_gradient(version):
    layer = make_layer(version, train=True)
    params = dict(layer.named_parameters())
    for ni, nt in [(1, 1), (5, 7)]:
        layer.zero_grad(set_to_none=True)
        image, text, image_mask, text_mask = make_inputs(ni, nt, padded=ni > 1)
        image.requires_grad_(True)
        text.requires_grad_(True)
        image_out, text_out = layer(image, text, image_mask, text_mask)
        (image_out.square().mean() + text_out.sin().mean()).backward()
        assert image.grad is not None or text.grad is not None
        for name, param in params.items():
            assert param.grad is not None, f"{version}: {name} got no gradient at {(ni, nt)}"
            assert torch.isfinite(param.grad).all(), f"{version}: {name} non-finite gradient"
            if ni > 1:  # with real sequences every parameter must actually matter
                assert param.grad.abs().sum() > 0, f"{version}: {name} has an all-zero gradient"


@pytest.mark.parametrize("version", EXPECTED)
def test_padded_tokens_are_ignored(version):
    layer = make_layer(version)  # eval mode: no dropout
    image, text, image_mask, text_mask = make_inputs(6, 7, padded=True, seed=3)
    image_out, text_out = layer(image, text, image_mask, text_mask)

    noisy_text = torch.where(text_mask[..., None], text, 100.0 * torch.randn_like(text))
    noisy_image = torch.where(image_mask[..., None], image, 100.0 * torch.randn_like(image))
    assert not torch.equal(noisy_text, text) and not torch.equal(noisy_image, image)

    image_out_2, _ = layer(image, noisy_text, image_mask, text_mask)
    _, text_out_2 = layer(noisy_image, text, image_mask, text_mask)
    torch.testing.assert_close(image_out_2, image_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(text_out_2, text_out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", EXPECTED)
def test_all_true_masks_equal_no_masks(version):
    layer = make_layer(version)
    image, text, _, _ = make_inputs(4, 5, padded=False)
    ones_i = torch.ones(BATCH, 4, dtype=torch.bool)
    ones_t = torch.ones(BATCH, 5, dtype=torch.bool)
    for a, b in zip(layer(image, text), layer(image, text, ones_i, ones_t)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("version", EXPECTED)
def test_outputs_depend_on_the_other_modality(version):
    """With real sequences, each side really reads the other (attention is not a copy)."""
    layer = make_layer(version)
    image, text, _, _ = make_inputs(5, 7, padded=False)
    image_out, text_out = layer(image, text)
    image_out_2, text_out_2 = layer(image, text.flip(0))
    assert not torch.allclose(image_out, image_out_2)
    image_out_3, text_out_3 = layer(image.flip(0), text)
    assert not torch.allclose(text_out, text_out_3)


# ---------------------------------------------------------------- erratum 3 and primitives


def test_length_one_attention_is_a_copy():
    """Erratum 3: with one key the softmax weight is exactly 1, so v1 copies the other vector."""
    layer = make_layer("v1")
    image, text = torch.randn(BATCH, 1, DIM), torch.randn(BATCH, 1, DIM)
    image_out, text_out = layer(image, text)
    assert torch.equal(image_out, text) and torch.equal(text_out, image)

    # v8 (projected): the image output ignores the image input entirely...
    v8 = make_layer("v8")
    image_out_a, _ = v8(image, text)
    image_out_b, _ = v8(torch.randn_like(image), text)
    assert torch.equal(image_out_a, image_out_b)
    # ...and the query/key projections receive zero gradient (up to the fused kernel's
    # rounding): nothing to learn.
    (sum(out.square().mean() for out in v8(image, text))).backward()
    value_grad = v8.to_v.weight.grad.abs().max()
    assert value_grad > 0
    assert v8.to_q.weight.grad.abs().max() < 1e-6 * value_grad
    assert v8.to_k.weight.grad.abs().max() < 1e-6 * value_grad


def test_shared_attention_transposes_one_matrix():
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(2, 4, DIM, generator=g), torch.randn(2, 6, DIM, generator=g)
    scores = image @ text.transpose(-2, -1) * DIM**-0.5  # [B, Ni, Nt]
    weights = scores.softmax(-1)
    image_att, text_att = shared_attention(image, text, image, text, scale=DIM**-0.5)
    torch.testing.assert_close(image_att, weights @ text)
    torch.testing.assert_close(text_att, weights.transpose(-2, -1) @ image)
    _, text_dual = shared_attention(image, text, image, text, scale=DIM**-0.5, dual_softmax=True)
    torch.testing.assert_close(text_dual, scores.transpose(-2, -1).softmax(-1) @ image)


def test_v11_combines_multi_query_and_levels():
    layer = make_layer("v11")
    assert isinstance(layer, ca.v10_4.CrossAttention) and isinstance(layer, ca.v10_5.CrossAttention)
    names = {name for name, _ in layer.named_parameters()}
    assert "to_kv.weight" in names and "level_weights" in names
    assert "to_k.weight" not in names and "out_norm.weight" not in names
    assert len(layer.level_projections) == 3
    mqa = {name for name, _ in make_layer("v10_4").named_parameters()}
    assert "to_kv.weight" in mqa and "to_k.weight" not in mqa and "to_v.weight" not in mqa


@pytest.mark.parametrize("version", EXPECTED)
def test_versions_add_modules_through_hooks_never_delete_them(version):
    """A version shows only its delta: it may override a hook, never ``del`` a parent's module."""
    source = inspect.getsource(importlib.import_module(f"dldna.chapter_10.mm.cross_attention.{version}"))
    assert "del self." not in source and "delattr(" not in source
    assert get_cross_attention("v10_2", CONFIG).gate_scale.item() == pytest.approx(0.1)
