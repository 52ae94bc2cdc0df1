"""The from-scratch ViT: shapes, gradients, parity with torchvision, MAE masking helpers."""

import pytest
import torch
from torchvision.models import VisionTransformer as TorchvisionViT
from torchvision.models import vit_b_16

from dldna.chapter_10.vit import (
    PatchEmbed,
    VisionTransformer,
    ViTConfig,
    count_parameters,
    load_torchvision_weights,
    masked_image,
    patchify,
    random_masking,
    unpatchify,
)

TINY = ViTConfig(image_size=32, patch_size=8, num_classes=10, dim=64, depth=2, heads=4, mlp_dim=128)


def test_patch_embed_is_a_linear_map_of_each_patch():
    torch.manual_seed(0)
    embed = PatchEmbed(image_size=32, patch_size=8, in_channels=3, dim=64)
    images = torch.randn(2, 3, 32, 32)
    out = embed(images)
    assert out.shape == (2, 16, 64)
    # patch (row 1, col 2) is token 1 * 4 + 2; the conv is W @ flattened patch + b
    patch = images[:, :, 8:16, 16:24].reshape(2, -1)  # [B, C*p*p]
    expected = patch @ embed.proj.weight.reshape(64, -1).t() + embed.proj.bias
    torch.testing.assert_close(out[:, 6], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="image_size"):
        embed(torch.randn(2, 3, 48, 48))


def test_vit_shapes_finite_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = VisionTransformer(TINY)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.forward_tokens(torch.randn(1, 3, 32, 32)).shape == (1, 17, 64)  # class token + 16 patches
    headless = VisionTransformer(ViTConfig(32, 8, 3, 0, 64, 2, 4, 128))
    assert headless(torch.randn(2, 3, 32, 32)).shape == (2, 64)


def test_vit_b16_parameter_count_equals_torchvision():
    with torch.device("meta"):
        ours = count_parameters(VisionTransformer(ViTConfig()))
        theirs = count_parameters(vit_b_16(weights=None))
    assert ours == theirs == 86_567_656


def test_same_function_as_torchvision_vit():
    torch.manual_seed(0)
    reference = TorchvisionViT(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    ).eval()
    with torch.no_grad():
        for p in reference.parameters():  # torchvision zero-initialises the head; randomise everything
            p.normal_(std=0.1)
    ours = load_torchvision_weights(VisionTransformer(TINY), reference.state_dict()).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = reference(images)
        assert expected.abs().mean() > 1e-3
        torch.testing.assert_close(ours(images), expected, rtol=1e-4, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ViTConfig(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="heads"):
        ViTConfig(dim=100, heads=12)


def test_random_masking_keeps_the_right_patches_and_restores_order():
    patches = torch.arange(2 * 16 * 3, dtype=torch.float).reshape(2, 16, 3)
    kept, mask, ids_restore = random_masking(patches, 0.75, torch.Generator().manual_seed(0))
    assert kept.shape == (2, 4, 3)
    assert mask.shape == (2, 16) and mask.sum(dim=1).tolist() == [12.0, 12.0]
    # MAE decoder step: append mask tokens, unshuffle with ids_restore
    filler = torch.full((2, 12, 3), -1.0)
    restored = torch.cat([kept, filler], dim=1).gather(1, ids_restore.unsqueeze(-1).expand(-1, -1, 3))
    visible = mask == 0
    assert torch.equal(restored[visible], patches[visible])  # kept patches return to their places
    assert (restored[~visible] == -1).all()
    # the two samples get different random masks; the same generator seed gives the same one
    assert not torch.equal(mask[0], mask[1])
    _, mask_again, _ = random_masking(patches, 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(mask, mask_again)
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(patches, 1.0)


def test_patchify_roundtrip_and_masked_picture():
    images = torch.rand(2, 3, 32, 48)
    patches = patchify(images, 8)
    assert patches.shape == (2, 24, 192)
    # patch 1 is the second patch of the first row, pixels ordered (row, col, channel)
    torch.testing.assert_close(patches[:, 1], images[:, :, :8, 8:16].permute(0, 2, 3, 1).reshape(2, -1))
    torch.testing.assert_close(unpatchify(patches, 8, 3, grid=(4, 6)), images)
    mask = torch.zeros(2, 24)
    mask[:, 1] = 1
    shown = masked_image(images, mask, 8, fill=0.5)
    assert (shown[:, :, :8, 8:16] == 0.5).all()
    torch.testing.assert_close(shown[:, :, 8:, :], images[:, :, 8:, :])
    with pytest.raises(ValueError, match="square grid"):
        unpatchify(patches, 8, 3)
