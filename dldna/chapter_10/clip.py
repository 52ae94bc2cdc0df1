"""CLIP (section 10.6): two encoders, one shared embedding space, a symmetric contrastive loss.

The image tower is any module mapping images to ``[B, F]`` (by default the from-scratch
:class:`~dldna.chapter_10.vit.VisionTransformer` without its head); the text tower is a
small causal Transformer over token ids. Linear projections map both to ``embed_dim``,
embeddings are L2-normalised, and a learnable temperature scales the cosine
similarities. The towers never see each other's input: image ``i``'s embedding cannot
depend on caption ``j``, which is what makes CLIP a *retrieval* model (embed a database
once, search it with any query) and zero-shot classification possible.

Training: ``loss = contrastive_loss(model(images, input_ids, attention_mask))``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dldna.chapter_10.layers import LogitScale, check_temperature, masked_mean
from dldna.chapter_10.vit import LN_EPS, Block, VisionTransformer, ViTConfig, init_linear
from dldna.registry import Registry

logger = logging.getLogger(__name__)

# A few of the prompt templates CLIP used for ImageNet zero-shot classification.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a drawing of a {}.",
    "a close-up photo of a {}.",
)


@dataclass
class CLIPConfig:
    """Sizes of a CLIP model; the defaults are tiny, trainable on a CPU in seconds.

    The temperature starts at 0.07 (stored as ``log(1 / 0.07)``, CLIP's choice) and the
    scale ``1 / temperature`` is capped at 100 so the softmax cannot become a hard max
    (see :class:`~dldna.chapter_10.layers.LogitScale`).
    """

    embed_dim: int = 64
    # image tower (a ViT without head)
    image_size: int = 32
    patch_size: int = 8
    in_channels: int = 3
    vision_width: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    # text tower
    vocab_size: int = 1000
    context_length: int = 32
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    causal: bool = True
    pooling: str = "last"
    dropout: float = 0.0
    # temperature
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0

    def __post_init__(self) -> None:
        POOLERS.get(self.pooling)  # an unknown name lists the known ones
        check_temperature(self.init_temperature, self.max_logit_scale)


#: Pooling name -> ``(hidden [B, L, D], mask [B, L]) -> [B, D]``; add one with
#: ``@register_pooling("name")``.
POOLERS: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("pooling")
register_pooling = POOLERS.register


@register_pooling("last")
def pool_last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real token's state. With a causal mask it is the only token that has seen
    the whole caption; CLIP's tokenizer puts the end-of-text token there (EOT pooling)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask.long() * positions).argmax(dim=1)  # [B], works for left or right padding
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # [B, D]


@register_pooling("mean")
def pool_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average over real tokens (padding excluded)."""
    return masked_mean(hidden, mask.bool())  # [B, D]


class TextTransformer(nn.Module):
    """Token + position embeddings, pre-norm Transformer blocks, final LayerNorm, pooling.

    ``attention_mask`` (``[B, L]``, 1 = real token, 0 = padding) removes padding from
    the keys; with ``causal=True`` a token also cannot see the tokens after it (GPT-style,
    as in CLIP). Every token may always attend to itself, so no softmax row is empty.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        width: int,
        heads: int,
        layers: int,
        causal: bool = True,
        pooling: str = "last",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pool = POOLERS.get(pooling)  # an unknown name lists the known ones
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.causal = causal
        self.pooling = pooling
        self.output_dim = width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.empty(1, context_length, width).normal_(std=0.01))
        self.blocks = nn.ModuleList(Block(width, heads, 4 * width, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width, eps=LN_EPS)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.apply(init_linear)

    def _attn_mask(self, mask: torch.Tensor) -> torch.Tensor:
        length = mask.shape[1]
        allowed = mask.bool()[:, None, :]  # [B, 1, L] keys that are real tokens
        if self.causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=mask.device)
        return allowed | eye  # [B, L, L]: query i may read key j

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be [batch, length]; got {tuple(input_ids.shape)}.")
        b, length = input_ids.shape
        if length > self.context_length:
            raise ValueError(
                f"Sequence length {length} exceeds context_length {self.context_length}; "
                f"truncate when tokenizing (e.g. max_length={self.context_length})."
            )
        if int(input_ids.max()) >= self.vocab_size or int(input_ids.min()) < 0:
            raise ValueError(
                f"Token ids must be in [0, {self.vocab_size}); the tokenizer and vocab_size disagree."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask {tuple(attention_mask.shape)} must match input_ids {(b, length)}."
            )
        if not bool(attention_mask.bool().any(dim=1).all()):
            raise ValueError("Every caption needs at least one real token (an attention_mask row is all 0).")
        x = self.token_embedding(input_ids) + self.pos_embed[:, :length]  # [B, L, W]
        attn_mask = self._attn_mask(attention_mask)
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        x = self.norm(x)
        return self.pool(x, attention_mask)  # [B, W]


def _feature_dim(encoder: nn.Module, given: int | None, which: str) -> int:
    dim = given if given is not None else getattr(encoder, "output_dim", None)
    if dim is None:
        raise ValueError(
            f"Cannot tell the {which} encoder's output size: pass {which}_feature_dim=... "
            f"or give the encoder an `output_dim` attribute."
        )
    return int(dim)


class CLIP(nn.Module):
    """Dual-encoder CLIP: ``forward`` returns ``logits_per_image [B_img, B_txt]``.

    Towers may be passed in (any image module ``[B, C, H, W] -> [B, F]``; any text
    module ``(input_ids, attention_mask) -> [B, F]``), else they are built from
    ``config``. Their feature sizes come from ``*_feature_dim`` or the encoders'
    ``output_dim`` attribute.
    """

    def __init__(
        self,
        config: CLIPConfig | None = None,
        image_encoder: nn.Module | None = None,
        text_encoder: nn.Module | None = None,
        image_feature_dim: int | None = None,
        text_feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = c = config or CLIPConfig()
        if image_encoder is None:
            vit = ViTConfig(
                image_size=c.image_size,
                patch_size=c.patch_size,
                in_channels=c.in_channels,
                num_classes=0,  # no head: returns the class-token feature [B, width]
                dim=c.vision_width,
                depth=c.vision_layers,
                heads=c.vision_heads,
                mlp_dim=4 * c.vision_width,
                dropout=c.dropout,
            )
            image_encoder = VisionTransformer(vit)
        if text_encoder is None:
            text_encoder = TextTransformer(
                vocab_size=c.vocab_size,
                context_length=c.context_length,
                width=c.text_width,
                heads=c.text_heads,
                layers=c.text_layers,
                causal=c.causal,
                pooling=c.pooling,
                dropout=c.dropout,
            )
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        # No bias: a bias would shift every embedding the same way before normalisation.
        self.image_projection = nn.Linear(
            _feature_dim(image_encoder, image_feature_dim, "image"),
            c.embed_dim,
            bias=False,
        )
        self.text_projection = nn.Linear(
            _feature_dim(text_encoder, text_feature_dim, "text"),
            c.embed_dim,
            bias=False,
        )
        self.logit_scale = LogitScale(c.init_temperature, c.max_logit_scale)
        for proj in (self.image_projection, self.text_projection):
            nn.init.normal_(proj.weight, std=proj.in_features**-0.5)

    @property
    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` capped at ``max_logit_scale``: the inverse temperature.

        The cap is applied in the forward pass; above it the gradient is zero, so the
        effective scale stays at the cap (open_clip clamps the parameter in place
        instead).
        """
        return self.logit_scale()

    def encode_image(
        self, images: torch.Tensor, normalize: bool = True
    ) -> torch.Tensor:
        features = self.image_encoder(images)  # [B, F_img]
        if features.ndim != 2:
            raise ValueError(
                "The image encoder must return [B, F]; "
                f"it returned {tuple(features.shape)}."
            )
        emb = self.image_projection(features)  # [B, E]
        return F.normalize(emb, dim=-1) if normalize else emb

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        normalize: bool = True,
    ) -> torch.Tensor:
        features = self.text_encoder(input_ids, attention_mask)  # [B, F_txt]
        if features.ndim != 2:
            raise ValueError(
                "The text encoder must return [B, F]; "
                f"it returned {tuple(features.shape)}."
            )
        emb = self.text_projection(features)  # [B, E]
        return F.normalize(emb, dim=-1) if normalize else emb

    def forward(
        self,
        images: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        image_emb = self.encode_image(images)  # [B_img, E]
        text_emb = self.encode_text(input_ids, attention_mask)  # [B_txt, E]
        return (
            self.scale * image_emb @ text_emb.t()
        )  # [B_img, B_txt]; logits_per_text is .t()


def _unpack_tokens(tokens: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Accept a tokenizer's output: a mapping with ``input_ids`` (Hugging Face), a pair
    ``(input_ids, attention_mask)`` or a bare ``input_ids`` tensor."""
    if isinstance(tokens, Mapping):
        return tokens["input_ids"], tokens.get("attention_mask")
    if isinstance(tokens, torch.Tensor):
        return tokens, None
    if isinstance(tokens, (tuple, list)) and len(tokens) == 2:
        return tokens[0], tokens[1]
    raise TypeError(
        "tokenize_fn must return a mapping with 'input_ids' (and 'attention_mask'), a pair "
        f"(input_ids, attention_mask) or an input_ids tensor; got {type(tokens).__name__}."
    )


@torch.no_grad()
def zero_shot_classifier(
    model: CLIP,
    class_names: Sequence[str],
    templates: Sequence[str] | None,
    tokenize_fn: Callable[[list[str]], object],
) -> torch.Tensor:
    """One text embedding per class: ``[C, E]``.

    Each class name is put into every template ("a photo of a {}."), the prompts are
    embedded and normalised, averaged (prompt ensembling) and renormalised. Classifying
    an image is then a nearest-prompt search: no training on the classes at all.
    ``templates=None`` uses :data:`PROMPT_TEMPLATES`.
    """
    templates = PROMPT_TEMPLATES if templates is None else tuple(templates)
    if not class_names:
        raise ValueError("class_names is empty.")
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise ValueError(f"Every template needs a '{{}}' placeholder for the class name; bad: {bad}.")
    device = model.logit_scale.log_scale.device
    weights = []
    for name in class_names:
        input_ids, mask = _unpack_tokens(tokenize_fn([t.format(name) for t in templates]))
        emb = model.encode_text(input_ids.to(device), None if mask is None else mask.to(device))  # [T, E]
        weights.append(F.normalize(emb.mean(dim=0), dim=-1))
    return torch.stack(weights)  # [C, E]


@torch.no_grad()
def zero_shot_predict(model: CLIP, images: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``[B, C]``: softmax of scaled cosine similarity to each class."""
    image_emb = model.encode_image(images.to(model.logit_scale.log_scale.device))  # [B, E]
    if classifier.ndim != 2 or classifier.shape[1] != image_emb.shape[1]:
        raise ValueError(
            f"classifier must be [C, {image_emb.shape[1]}] from zero_shot_classifier; "
            f"got {tuple(classifier.shape)}."
        )
    return (model.scale * image_emb @ classifier.t()).softmax(dim=-1)
