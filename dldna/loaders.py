"""Loaders for every pretrained artifact the chapter uses.

Each loader takes a :class:`~dldna.runtime.Runtime` and returns a model of the **same
class** in every profile:

* ``full`` (online): the pretrained weights, by the ids in :data:`MODEL_IDS` and
  :data:`TORCHVISION_WEIGHTS` (the one table of ids in the package);
* ``full`` with ``DLDNA_RANDOM_WEIGHTS=1``: the full-size architecture, random weights;
* ``smoke``: a tiny configuration of the same class, random weights; for BLIP, ViLT and
  CLIP, small models of the same classes trained on synthetic scenes
  (:mod:`dldna.scene_models`, committed with the package).

Processors and tokenizers are built locally for the synthetic profiles: a WordPiece or
byte-level BPE vocabulary is trained with ``tokenizers`` on captions and wrapped in the
tokenizer class the real checkpoint uses. Nothing here touches the network at import time
or in a constructor; only the ``full`` branch calls ``from_pretrained``, and it first
checks the local cache, then fails fast with a clear message when the Hub cannot be used
(``HF_HUB_OFFLINE=1``: the local cache only).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torchvision
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import nn

from .backbones import ResNetTrunk, SmallConvNet
from .runtime import ResourceUnavailableError, Runtime, require_online

logger = logging.getLogger(__name__)

HF_HOST = "huggingface.co"
TORCH_HOST = "download.pytorch.org"

#: Hugging Face Hub ids of the checkpoints the chapter uses.
MODEL_IDS: dict[str, str] = {
    "blip_captioning": "Salesforce/blip-image-captioning-base",
    "vilt_vqa": "dandelin/vilt-b32-finetuned-vqa",
    "clip": "openai/clip-vit-base-patch32",
    "vit_in21k": "google/vit-base-patch16-224-in21k",
    "bert": "bert-base-uncased",
}

#: torchvision architectures and the weight enums used in the full profile.
TORCHVISION_WEIGHTS: dict[str, str] = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V2",
    "vit_b_16": "ViT_B_16_Weights.IMAGENET1K_V1",
}

#: Side length of the images the tiny smoke models expect.
SMOKE_IMAGE_SIZE = 64


@dataclass(frozen=True)
class ProfileSizes:
    """The sizes chapter code builds its models and data at, chosen per profile here.

    ``image_size``: side of the square images the image towers receive;
    ``embedding_dim``: width of the shared embedding space of the towers.
    """

    image_size: int
    embedding_dim: int


#: One row per profile; read through :func:`profile_sizes`.
PROFILE_SIZES: dict[str, ProfileSizes] = {
    "smoke": ProfileSizes(image_size=SMOKE_IMAGE_SIZE, embedding_dim=64),
    "full": ProfileSizes(image_size=224, embedding_dim=512),
}


def profile_sizes(runtime: Runtime) -> ProfileSizes:
    """The image side and embedding width for ``runtime``'s profile.

    Chapter code asks this instead of reading ``runtime.profile``; the full profile with
    random weights keeps the full sizes (it measures full-scale throughput).
    """
    return PROFILE_SIZES[runtime.profile]


#: Answers the tiny smoke VQA head can give (the real head has 3,129).
SMOKE_VQA_ANSWERS = ("0", "1", "2", "3", "4", "yes", "no", "cat", "dog", "red", "blue", "green")

#: Sentences from the chapter that every locally trained vocabulary must cover.
CHAPTER_TEXTS = (
    "How many cats are in the image?",
    "What colour is the square?",
    "Two cats sleeping on a couch.",
    "A dog playing in the park",
    "A cat sleeping on a couch",
    "Children playing soccer",
    "A sunset over the ocean",
    "A person cooking in the kitchen",
    "a photo of a cat",
    "a photo of a dog",
    "a photo of a bird",
    "a photo of",
    "a bedroom with a bed and a window",
)

_TINY_TRANSFORMER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
_BERT_SPECIALS = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
_CLIP_SPECIALS = dict(
    bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<|endoftext|>"
)


# --------------------------------------------------------------------------- tokenizers
def default_corpus(n_scenes: int = 400, seed: int = 0) -> list[str]:
    """Captions of synthetic scenes plus the chapter's own sentences."""
    from .data.shapes import caption_corpus

    return [*caption_corpus(n_scenes=n_scenes, seed=seed), *CHAPTER_TEXTS]


def build_wordpiece_tokenizer(
    texts: Iterable[str] | None = None, vocab_size: int = 1000
) -> transformers.BertTokenizerFast:
    """Build a lower-cased WordPiece vocabulary from ``texts``, wrapped in ``BertTokenizerFast``.

    The result behaves like ``bert-base-uncased``'s tokenizer ([CLS] ... [SEP], padding,
    attention masks) but knows only the words of ``texts``: the most frequent words (ties
    in alphabetical order) up to ``vocab_size``, plus every character alone and as a
    ``##`` continuation, so an unseen word is spelled out rather than lost. The vocabulary
    is a pure function of ``texts``: ``tokenizers``' WordPiece trainer breaks ties between
    equally frequent merges differently on every run, which would give the same captions
    different ids, and two runs with the same seed different models.
    """
    corpus = list(texts if texts is not None else default_corpus())
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in corpus:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for word in counts for c in word})
    fallback = [*chars, *(f"##{c}" for c in chars)]
    budget = max(0, vocab_size - len(specials) - len(fallback))
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if len(w) > 1][:budget]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys([*specials, *fallback, *words]))}

    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return transformers.BertTokenizerFast(tokenizer_object=tok, **_BERT_SPECIALS)


def _merge_pair(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """``symbols`` with every occurrence of ``pair`` merged into one symbol, left to right."""
    out, i = [], 0
    while i < len(symbols):
        if symbols[i : i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def build_bpe_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 1000) -> transformers.CLIPTokenizerFast:
    """Build a byte-level BPE vocabulary shaped like CLIP's, wrapped in ``CLIPTokenizerFast``.

    Words end in ``</w>`` and every text is wrapped in ``<|startoftext|> ... <|endoftext|>``,
    as in CLIP. The merges are counted directly, the most frequent adjacent pair first and
    ties in alphabetical order, so the vocabulary is a pure function of ``texts``:
    ``tokenizers``' BPE trainer breaks ties differently in every process, which gives the
    same captions different ids and two runs with the same seed different models.
    """
    start, end = _CLIP_SPECIALS["bos_token"], _CLIP_SPECIALS["eos_token"]
    normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    words_re = Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")
    pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(words_re, behavior="removed", invert=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts if texts is not None else default_corpus():
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[(*word[:-1], word[-1] + "</w>")] += 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([start, end, *alphabet, *(c + "</w>" for c in alphabet)])}
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, n in counts.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        merged: Counter[tuple[str, ...]] = Counter()
        for symbols, n in counts.items():
            merged[_merge_pair(symbols, best)] += n
        counts = merged
    tok = Tokenizer(models.BPE(vocab, merges, unk_token=end, end_of_word_suffix="</w>"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single=f"{start} $A {end}", special_tokens=[(start, vocab[start]), (end, vocab[end])]
    )
    tok.decoder = decoders.ByteLevel()
    return transformers.CLIPTokenizerFast(tokenizer_object=tok, **_CLIP_SPECIALS)


@lru_cache(maxsize=4)
def _cached_wordpiece() -> transformers.PreTrainedTokenizerBase:
    return build_wordpiece_tokenizer()


@lru_cache(maxsize=4)
def _cached_bpe() -> transformers.PreTrainedTokenizerBase:
    return build_bpe_tokenizer()


# ------------------------------------------------------------------ Hugging Face models
@dataclass(frozen=True)
class HubSpec:
    """How to build one Hub checkpoint's model and processor in each profile.

    ``config(tokenizer, tiny)`` returns the configuration for the synthetic profiles;
    ``processor(tokenizer, tiny)`` builds the matching processor locally.
    """

    key: str
    model_class: type
    processor_class: type
    tokenizer: Callable[[], Any]
    config: Callable[[Any, bool], transformers.PretrainedConfig]
    processor: Callable[[Any, bool], Any]
    #: The model of :mod:`dldna.scene_models` the smoke profile loads instead of random
    #: weights: the same class, trained on synthetic scenes.
    scene_model: str | None = None

    @property
    def repo_id(self) -> str:
        return MODEL_IDS[self.key]


def _text_ids(tokenizer) -> dict[str, int]:
    return dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)


def _blip_config(tokenizer, tiny: bool) -> transformers.BlipConfig:
    ids = _text_ids(tokenizer)
    text = dict(ids, bos_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                eos_token_id=tokenizer.sep_token_id)
    if not tiny:
        text["vocab_size"] = max(ids["vocab_size"], transformers.BlipTextConfig().vocab_size)
        return transformers.BlipConfig(text_config=text)
    vision = dict(_TINY_TRANSFORMER, image_size=SMOKE_IMAGE_SIZE, patch_size=16)
    return transformers.BlipConfig(text_config=dict(text, **_TINY_TRANSFORMER), vision_config=vision)


def _blip_processor(tokenizer, tiny: bool) -> transformers.BlipProcessor:
    side = SMOKE_IMAGE_SIZE if tiny else transformers.BlipVisionConfig().image_size
    image_processor = transformers.BlipImageProcessor(size={"height": side, "width": side})
    return transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _vilt_config(tokenizer, tiny: bool) -> transformers.ViltConfig:
    answers = dict(
        num_labels=len(SMOKE_VQA_ANSWERS),
        id2label=dict(enumerate(SMOKE_VQA_ANSWERS)),
        label2id={a: i for i, a in enumerate(SMOKE_VQA_ANSWERS)},
    )
    if not tiny:
        return transformers.ViltConfig(**answers)
    return transformers.ViltConfig(
        **_TINY_TRANSFORMER, **answers, vocab_size=len(tokenizer), image_size=SMOKE_IMAGE_SIZE,
        patch_size=16, max_image_length=-1, max_position_embeddings=64,
    )


def _vilt_processor(tokenizer, tiny: bool) -> transformers.ViltProcessor:
    size = {"shortest_edge": SMOKE_IMAGE_SIZE} if tiny else {"shortest_edge": 384}
    image_processor = transformers.ViltImageProcessor(size=size, size_divisor=16 if tiny else 32)
    return transformers.ViltProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _clip_config(tokenizer, tiny: bool) -> transformers.CLIPConfig:
    text = dict(_text_ids(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if not tiny:
        text["vocab_size"] = max(text["vocab_size"], transformers.CLIPTextConfig().vocab_size)
        return transformers.CLIPConfig(text_config=text)
    return transformers.CLIPConfig(
        text_config=dict(text, **_TINY_TRANSFORMER, max_position_embeddings=64),
        vision_config=dict(_TINY_TRANSFORMER, image_size=SMOKE_IMAGE_SIZE, patch_size=16),
        projection_dim=32,
    )


def _clip_processor(tokenizer, tiny: bool) -> transformers.CLIPProcessor:
    side = SMOKE_IMAGE_SIZE if tiny else 224
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    return transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _vit_config(tokenizer, tiny: bool) -> transformers.ViTConfig:
    if not tiny:
        return transformers.ViTConfig()
    return transformers.ViTConfig(**_TINY_TRANSFORMER, image_size=SMOKE_IMAGE_SIZE, patch_size=16)


def _vit_processor(tokenizer, tiny: bool) -> transformers.ViTImageProcessor:
    side = SMOKE_IMAGE_SIZE if tiny else 224
    return transformers.ViTImageProcessor(size={"height": side, "width": side})


def _bert_config(tokenizer, tiny: bool) -> transformers.BertConfig:
    ids = _text_ids(tokenizer)
    if not tiny:
        return transformers.BertConfig(vocab_size=max(ids["vocab_size"], transformers.BertConfig().vocab_size))
    return transformers.BertConfig(
        **ids, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=128,
    )


HUB_SPECS: dict[str, HubSpec] = {
    spec.key: spec
    for spec in (
        HubSpec("blip_captioning", transformers.BlipForConditionalGeneration, transformers.BlipProcessor,
                _cached_wordpiece, _blip_config, _blip_processor, scene_model="blip"),
        HubSpec("vilt_vqa", transformers.ViltForQuestionAnswering, transformers.ViltProcessor,
                _cached_wordpiece, _vilt_config, _vilt_processor, scene_model="vilt"),
        HubSpec("clip", transformers.CLIPModel, transformers.CLIPProcessor,
                _cached_bpe, _clip_config, _clip_processor, scene_model="clip"),
        HubSpec("vit_in21k", transformers.ViTModel, transformers.ViTImageProcessor,
                lambda: None, _vit_config, _vit_processor),
        HubSpec("bert", transformers.BertModel, transformers.BertTokenizerFast,
                _cached_wordpiece, _bert_config, lambda tokenizer, tiny: tokenizer),
    )
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _from_hub(cls, repo_id: str, what: str):
    """``cls.from_pretrained(repo_id)``: the local cache first, then the Hub if allowed.

    Under ``HF_HUB_OFFLINE=1`` a missing model is a :class:`ResourceUnavailableError`
    naming it, the cache folder and how to fill it, without the libraries' tracebacks.
    """
    try:
        return cls.from_pretrained(repo_id, local_files_only=True)
    except OSError as exc:  # not in the cache (or an incomplete copy)
        cause = _first_line(exc)
    from huggingface_hub import constants

    logger.info("%s is not in the local cache (%s)", repo_id, cause)
    require_online(
        f"{what} '{repo_id}'",
        HF_HOST,
        where=f"the Hugging Face cache {constants.HF_HUB_CACHE}",
        how_to_get=f"python -c \"import huggingface_hub; huggingface_hub.snapshot_download('{repo_id}')\"",
    )
    logger.info("Downloading %s from the Hugging Face Hub", repo_id)
    try:
        return cls.from_pretrained(repo_id)
    except OSError as exc:
        raise ResourceUnavailableError(
            f"Downloading {what} '{repo_id}' from the Hugging Face Hub failed ({_first_line(exc)})."
        ) from None


def load_hub_model(key: str, runtime: Runtime, tokenizer=None) -> tuple[nn.Module, Any]:
    """Return ``(model, processor)`` for the checkpoint ``key`` of :data:`MODEL_IDS`.

    ``tokenizer`` replaces the locally trained vocabulary in the synthetic profiles (for
    example one trained on the dataset at hand). The model is in eval mode on
    ``runtime.device``.
    """
    if key not in HUB_SPECS:
        raise KeyError(f"Unknown model {key!r}; known: {', '.join(HUB_SPECS)}")
    spec = HUB_SPECS[key]
    if runtime.smoke and spec.scene_model is not None and tokenizer is None:
        from .scene_models import load_scene_model

        return load_scene_model(spec.scene_model, device=runtime.device)
    if runtime.synthetic:
        tokenizer = tokenizer if tokenizer is not None else spec.tokenizer()
        model = spec.model_class(spec.config(tokenizer, runtime.smoke))
        processor = spec.processor(tokenizer, runtime.smoke)
    else:
        model = _from_hub(spec.model_class, spec.repo_id, "the pretrained model")
        processor = _from_hub(spec.processor_class, spec.repo_id, "the processor of")
    return model.to(runtime.device).eval(), processor


def model_source(key: str, runtime: Runtime) -> str:
    """Say where a loaded model came from, for printing next to its outputs."""
    repo_id = MODEL_IDS.get(key) or TORCHVISION_WEIGHTS[key]
    if not runtime.synthetic:
        return f"{repo_id} (pretrained)"
    spec = HUB_SPECS.get(key)
    if runtime.smoke and spec is not None and spec.scene_model is not None:
        from .weights import training_seconds

        return f"small model trained for {training_seconds():.0f} s on synthetic scenes (stands in for {repo_id})"
    size = "tiny configuration" if runtime.smoke else "full-size architecture"
    return f"{size}, random weights (stands in for {repo_id})"


def load_blip_captioning(runtime: Runtime):
    """BLIP image captioning (``BlipForConditionalGeneration``) and its ``BlipProcessor``."""
    return load_hub_model("blip_captioning", runtime)


def load_vilt_vqa(runtime: Runtime):
    """ViLT fine-tuned for VQA (``ViltForQuestionAnswering``) and its ``ViltProcessor``."""
    return load_hub_model("vilt_vqa", runtime)


def load_clip(runtime: Runtime):
    """CLIP ViT-B/32 (``CLIPModel``) and its ``CLIPProcessor``."""
    return load_hub_model("clip", runtime)


def load_vit(runtime: Runtime):
    """ViT-base pre-trained on ImageNet-21k (``ViTModel``) and its ``ViTImageProcessor``."""
    return load_hub_model("vit_in21k", runtime)


def load_bert(runtime: Runtime, texts: Sequence[str] | None = None):
    """BERT-base uncased (``BertModel``) and its ``BertTokenizerFast``.

    In the synthetic profiles the tokenizer is trained on ``texts`` when given (for example
    a dataset's captions), else on :func:`default_corpus`.
    """
    tokenizer = build_wordpiece_tokenizer(texts) if (texts is not None and runtime.synthetic) else None
    return load_hub_model("bert", runtime, tokenizer=tokenizer)


# ------------------------------------------------------------------ torchvision models
def _torchvision_weights(arch: str):
    """The weight enum of ``arch``; its file must be in torch's cache or downloadable.

    torchvision checks a weight file's hash only while downloading it; a file already in
    ``$TORCH_HOME/hub/checkpoints`` is loaded as it is.
    """
    enum_name, member = TORCHVISION_WEIGHTS[arch].split(".")
    weights = getattr(torchvision.models, enum_name)[member]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.exists():
        require_online(
            f"the torchvision weights {TORCHVISION_WEIGHTS[arch]}",
            TORCH_HOST,
            where=str(cached),
            how_to_get=f"download {weights.url} into {cached.parent}",
        )
    return weights


def load_resnet(runtime: Runtime, depth: int = 18, num_classes: int | None = None) -> nn.Module:
    """torchvision ResNet-18/50: ImageNet weights in ``full``, random weights otherwise.

    ``num_classes`` replaces the final layer (a fresh head for a new task).
    """
    arch = f"resnet{depth}"
    if arch not in TORCHVISION_WEIGHTS:
        raise KeyError(f"Unknown ResNet depth {depth}; known: 18, 50")
    weights = None if runtime.synthetic else _torchvision_weights(arch)
    model = getattr(torchvision.models, arch)(weights=weights)
    if num_classes is not None:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model.to(runtime.device)


def load_torchvision_vit(runtime: Runtime, num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    """torchvision's ``VisionTransformer``: ViT-B/16 in ``full``, a tiny one in ``smoke``.

    The chapter trains ``vit_b_16`` from scratch on CIFAR-10, so ``pretrained`` is off by
    default; in ``smoke`` the same class is built with 2 layers of width 64 on 32-px images.
    """
    if runtime.smoke:
        model = torchvision.models.VisionTransformer(
            image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128,
            num_classes=num_classes,
        )
        return model.to(runtime.device)
    weights = _torchvision_weights("vit_b_16") if (pretrained and not runtime.offline) else None
    model = torchvision.models.vit_b_16(weights=weights)
    if model.heads.head.out_features != num_classes:
        model.heads.head = nn.Linear(model.heads.head.in_features, num_classes)
    return model.to(runtime.device)


def load_image_backbone(runtime: Runtime, depth: int = 18) -> nn.Module:
    """A feature-map backbone for the chapter's image towers (``out_channels`` attribute).

    ``full`` (online or offline): the ResNet trunk of :func:`load_resnet`. ``smoke``: a
    small CNN, since training a ResNet from scratch is too slow for a CPU in seconds.
    """
    if runtime.smoke:
        return SmallConvNet().to(runtime.device)
    return ResNetTrunk(load_resnet(runtime, depth=depth)).to(runtime.device)
