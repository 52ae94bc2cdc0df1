"""Image and text towers shared by the chapter's models.

Every model in sections 10.4-10.6 needs the same two things: an image encoder that turns
a picture into a grid of region vectors ("patch tokens") and one summary vector, and a
text encoder that turns a caption into word vectors and one summary vector, both
projected to a common width ``dim``. A dual encoder (:mod:`.multimodal_embedding`) uses
the summary vectors; cross-modal attention (:mod:`.crossmodal_attention`, the ablation in
:mod:`.mm`) uses the token sequences and the text padding mask.

The backbones are passed in (from :mod:`dldna.loaders`): a torchvision ResNet trunk or,
in the smoke profile, :class:`SmallConvNet`; a Hugging Face ``BertModel``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dldna.backbones import ConvNetConfig, ResNetTrunk, SmallConvNet  # noqa: F401 (re-exported)


@dataclass
class TowerOutput:
    """What a tower returns: tokens, their padding mask, and one pooled vector."""

    tokens: torch.Tensor  # [B, N, D]
    mask: torch.Tensor  # [B, N] bool, True = real token
    pooled: torch.Tensor  # [B, D]


def sinusoidal_2d(height: int, width: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed 2-D sine/cosine position codes ``[height * width, dim]`` (half for rows, half for columns).

    Convolutions see position only weakly; spatial words ("left of", "above") need it.
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for 2-D position codes, got {dim}")
    quarter = dim // 4
    freq = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=device) / quarter)  # [D/4]
    rows = torch.arange(height, device=device).float()[:, None] * freq  # [h, D/4]
    cols = torch.arange(width, device=device).float()[:, None] * freq  # [w, D/4]
    row_code = torch.cat([rows.sin(), rows.cos()], dim=-1)[:, None, :].expand(height, width, 2 * quarter)
    col_code = torch.cat([cols.sin(), cols.cos()], dim=-1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([row_code, col_code], dim=-1).reshape(height * width, dim)


class ImageTower(nn.Module):
    """CNN feature map -> patch tokens ``[B, h*w, dim]`` and a pooled vector ``[B, dim]``.

    One linear projection maps every region vector and the average-pooled vector to the
    shared width; the pooled path is exactly "ResNet with its classifier replaced by a
    projection", the dual encoder of section 10.4.
    """

    def __init__(self, backbone: nn.Module, dim: int, positions: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.proj = nn.Linear(backbone.out_channels, dim)
        self.norm = nn.LayerNorm(dim)
        self.positions = positions

    def forward(self, images: torch.Tensor) -> TowerOutput:
        fmap = self.backbone(images)  # [B, C, h, w]
        b, _, h, w = fmap.shape
        regions = fmap.flatten(2).transpose(1, 2)  # [B, h*w, C]
        tokens = self.proj(regions)  # [B, N, D]
        if self.positions:
            tokens = tokens + sinusoidal_2d(h, w, tokens.shape[-1], tokens.device)
        pooled = self.norm(self.proj(regions.mean(dim=1)))  # [B, D]
        mask = torch.ones(b, h * w, dtype=torch.bool, device=images.device)
        return TowerOutput(tokens=tokens, mask=mask, pooled=pooled)


class TextTower(nn.Module):
    """Transformer text encoder -> word tokens ``[B, L, dim]``, padding mask, [CLS] vector."""

    def __init__(self, encoder: nn.Module, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Linear(encoder.config.hidden_size, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TowerOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, H]
        tokens = self.proj(hidden)  # [B, L, D]
        pooled = self.norm(tokens[:, 0])  # [B, D], the [CLS] position
        return TowerOutput(tokens=tokens, mask=attention_mask.bool(), pooled=pooled)
