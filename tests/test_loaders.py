"""Every loader builds the real model class offline, and the full profile fails fast."""

import numpy as np
import pytest
import torch
import torchvision
import transformers
from PIL import Image

from dldna import loaders, runtime as rt


@pytest.fixture(scope="module")
def smoke():
    return rt.Runtime(profile="smoke", device=torch.device("cpu"))


@pytest.fixture(scope="module")
def cat():
    from skimage import data

    return Image.fromarray(data.chelsea())


def test_model_ids_are_the_chapter_checkpoints():
    assert loaders.MODEL_IDS["blip_captioning"] == "Salesforce/blip-image-captioning-base"
    assert loaders.MODEL_IDS["vilt_vqa"] == "dandelin/vilt-b32-finetuned-vqa"
    assert loaders.MODEL_IDS["clip"] == "openai/clip-vit-base-patch32"
    assert loaders.MODEL_IDS["vit_in21k"] == "google/vit-base-patch16-224-in21k"
    assert loaders.MODEL_IDS["bert"] == "bert-base-uncased"
    assert set(loaders.HUB_SPECS) == set(loaders.MODEL_IDS)


def test_wordpiece_tokenizer_is_berts_class_and_pads():
    tok = loaders.build_wordpiece_tokenizer(["a red circle above a blue square"] * 5, vocab_size=100)
    assert isinstance(tok, transformers.BertTokenizerFast)
    enc = tok(["a red circle", "a blue square above a red circle"], padding="max_length", max_length=12)
    assert [len(ids) for ids in enc["input_ids"]] == [12, 12]
    assert enc["input_ids"][0][0] == tok.cls_token_id
    assert tok.decode(enc["input_ids"][0], skip_special_tokens=True) == "a red circle"
    assert sum(enc["attention_mask"][0]) < 12


def test_bpe_tokenizer_is_clips_class():
    tok = loaders.build_bpe_tokenizer(["a photo of a cat", "a photo of a dog"] * 5, vocab_size=300)
    assert isinstance(tok, transformers.CLIPTokenizerFast)
    ids = tok("a photo of a cat")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_bpe_vocabulary_is_a_function_of_the_texts():
    # Two merges tie; the earlier in alphabetical order is taken, in every process
    # (tokenizers' own trainer breaks such ties differently from run to run).
    base = len(loaders.build_bpe_tokenizer(["x"], vocab_size=1))
    vocab = loaders.build_bpe_tokenizer(["cd ab", "ab cd"], vocab_size=base + 1).get_vocab()
    assert "ab</w>" in vocab and "cd</w>" not in vocab
    texts = loaders.default_corpus(n_scenes=50)
    assert loaders.build_bpe_tokenizer(texts).get_vocab() == loaders.build_bpe_tokenizer(texts[::-1]).get_vocab()


def test_default_corpus_covers_the_chapter_question():
    tok = loaders._cached_wordpiece()
    tokens = tok.tokenize("How many cats are in the image?")
    assert "[UNK]" not in tokens


def test_blip_captions_in_smoke(smoke, cat):
    model, processor = loaders.load_blip_captioning(smoke)
    assert type(model) is transformers.BlipForConditionalGeneration
    inputs = processor(images=cat, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8)
    assert isinstance(processor.decode(out[0], skip_special_tokens=True), str)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


def test_vilt_answers_from_its_label_set(smoke, cat):
    from dldna.data.vqa import ANSWERS

    model, processor = loaders.load_vilt_vqa(smoke)
    assert type(model) is transformers.ViltForQuestionAnswering
    enc = processor(images=cat, text="How many shapes are there?", return_tensors="pt")
    logits = model(**enc).logits
    assert logits.shape == (1, len(ANSWERS))  # the synthetic questions' answer vocabulary
    assert model.config.id2label[int(logits.argmax())] in ANSWERS


@pytest.mark.parametrize("key", ["blip_captioning", "vilt_vqa", "clip"])
def test_smoke_loads_the_models_trained_on_scenes(smoke, key):
    from dldna.weights import training_seconds

    model, _ = loaders.load_hub_model(key, smoke)
    assert not model.training
    source = loaders.model_source(key, smoke)
    assert f"trained for {training_seconds():.0f} s on synthetic scenes" in source
    assert loaders.MODEL_IDS[key] in source


def test_smoke_banner_says_what_the_trained_models_are():
    assert "small models trained for" in rt.Runtime(profile="smoke").banner
    assert "trained for" not in rt.Runtime(profile="full", offline=True).banner


def test_bert_keeps_random_weights_in_smoke(smoke):
    assert loaders.model_source("bert", smoke).startswith("tiny configuration, random weights")


def test_clip_scores_texts_against_an_image(smoke, cat):
    model, processor = loaders.load_clip(smoke)
    assert type(model) is transformers.CLIPModel
    enc = processor(text=["a photo of a cat", "a photo of a dog"], images=cat, return_tensors="pt", padding=True)
    probs = model(**enc).logits_per_image.softmax(-1)
    assert probs.shape == (1, 2) and torch.allclose(probs.sum(), torch.tensor(1.0))


def test_vit_in21k_encodes_patches(smoke, cat):
    model, processor = loaders.load_vit(smoke)
    assert type(model) is transformers.ViTModel
    hidden = model(**processor(images=cat, return_tensors="pt")).last_hidden_state
    assert hidden.shape == (1, (loaders.SMOKE_IMAGE_SIZE // 16) ** 2 + 1, model.config.hidden_size)


def test_bert_trained_on_given_texts(smoke):
    model, tokenizer = loaders.load_bert(smoke, texts=["zebra crossing", "zebra stripes"] * 5)
    assert type(model) is transformers.BertModel
    assert "zebra" in tokenizer.get_vocab()
    enc = tokenizer(["zebra crossing"], return_tensors="pt")
    assert model(**enc).last_hidden_state.shape[-1] == model.config.hidden_size


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_is_torchvisions_class(smoke, depth):
    model = loaders.load_resnet(smoke, depth=depth, num_classes=7)
    assert type(model) is torchvision.models.ResNet
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_torchvision_vit_smoke_is_the_same_class(smoke):
    model = loaders.load_torchvision_vit(smoke, num_classes=10)
    assert type(model) is torchvision.models.VisionTransformer
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_offline_full_keeps_the_full_architecture(monkeypatch):
    monkeypatch.setenv("DLDNA_OFFLINE", "1")
    offline = rt.setup("full", device="cpu")
    model, tokenizer = loaders.load_bert(offline)
    assert model.config.hidden_size == 768 and model.config.num_hidden_layers == 12
    assert isinstance(tokenizer, transformers.BertTokenizerFast)


def test_full_profile_without_network_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(rt, "host_reachable", lambda *a, **k: False)
    full = rt.Runtime(profile="full", device=torch.device("cpu"))
    with pytest.raises(rt.ResourceUnavailableError, match="dandelin/vilt-b32-finetuned-vqa"):
        loaders.load_vilt_vqa(full)


def test_full_torchvision_without_network_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(rt, "host_reachable", lambda *a, **k: False)
    full = rt.Runtime(profile="full", device=torch.device("cpu"))
    with pytest.raises(rt.ResourceUnavailableError, match="ResNet18_Weights"):
        loaders.load_resnet(full)


def test_unknown_hub_key():
    with pytest.raises(KeyError, match="blip_captioning"):
        loaders.load_hub_model("gpt", rt.Runtime())


def test_wordpiece_vocabulary_is_a_pure_function_of_the_texts():
    texts = ["two red squares left of a blue circle", "a green star above a cross"] * 4
    first, second = loaders.build_wordpiece_tokenizer(texts), loaders.build_wordpiece_tokenizer(list(reversed(texts)))
    assert first.get_vocab() == second.get_vocab()
    assert first.tokenize("two red squares") == ["two", "red", "squares"]
    assert first.tokenize("reds") == ["red", "##s"]
