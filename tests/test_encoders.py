import pytest
import torch
import torchvision

from dldna.chapter_10.encoders import ImageTower, ResNetTrunk, SmallConvNet, TextTower, sinusoidal_2d
from dldna.loaders import build_wordpiece_tokenizer, load_bert, load_image_backbone
from dldna.runtime import Runtime


def test_image_tower_tokens_and_pooled():
    tower = ImageTower(SmallConvNet(), dim=32)
    out = tower(torch.randn(2, 3, 64, 64))
    assert out.tokens.shape == (2, 64, 32) and out.pooled.shape == (2, 32)
    assert out.mask.all()
    out.tokens.sum().add(out.pooled.sum()).backward()
    assert all(p.grad is not None for p in tower.parameters())


def test_resnet_trunk_keeps_the_feature_map():
    trunk = ResNetTrunk(torchvision.models.resnet18())
    assert trunk.out_channels == 512
    assert trunk(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_position_codes_distinguish_left_from_right():
    codes = sinusoidal_2d(4, 4, 16)
    assert codes.shape == (16, 16)
    assert len({tuple(row.tolist()) for row in codes}) == 16
    with pytest.raises(ValueError):
        sinusoidal_2d(2, 2, 6)


def test_text_tower_masks_padding():
    run = Runtime(profile="smoke")
    bert, tok = load_bert(run, texts=["a red circle", "a blue square above a red circle"] * 3)
    tower = TextTower(bert, dim=16)
    enc = tok(["a red circle", "a blue square above a red circle"], padding="max_length", max_length=12, return_tensors="pt")
    out = tower(enc["input_ids"], enc["attention_mask"])
    assert out.tokens.shape == (2, 12, 16) and out.pooled.shape == (2, 16)
    assert torch.equal(out.mask, enc["attention_mask"].bool())


def test_backbone_per_profile():
    assert isinstance(load_image_backbone(Runtime(profile="smoke")), SmallConvNet)
    offline_full = Runtime(profile="full", offline=True)
    assert isinstance(load_image_backbone(offline_full), ResNetTrunk)
