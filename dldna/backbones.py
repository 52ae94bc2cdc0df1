"""Feature-map image backbones the loaders hand to the chapter's towers.

Both return a feature map ``[B, C, h, w]`` (no pooling, no classifier) and say its width
in ``out_channels``: :class:`ResNetTrunk` wraps a torchvision ResNet (the full profile),
:class:`SmallConvNet` is a small CNN for the smoke profile, where training a ResNet from
scratch on a CPU would take far too long.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ConvNetConfig:
    """A small VGG-style CNN for the smoke profile (64-px images -> an 8x8 feature map)."""

    channels: tuple[int, ...] = (32, 64, 64, 128, 128)
    strides: tuple[int, ...] = (2, 2, 1, 2, 1)


class SmallConvNet(nn.Module):
    """Conv-BN-ReLU blocks; returns the feature map ``[B, C, h, w]`` (no pooling, no head)."""

    def __init__(self, config: ConvNetConfig | None = None) -> None:
        super().__init__()
        config = config or ConvNetConfig()
        if len(config.channels) != len(config.strides):
            raise ValueError("ConvNetConfig.channels and .strides must have the same length")
        layers, c_in = [], 3
        for c_out, stride in zip(config.channels, config.strides):
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)  # [B, C, h, w]


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without its pooling and classifier: images -> ``[B, C, h, w]``."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4,
        )  # fmt: skip
        self.out_channels = resnet.fc.in_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)  # [B, C, h, w]
