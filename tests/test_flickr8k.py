"""The Flickr8k-layout reader, image-level splits, download guard and data preparation."""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from dldna import runtime
from dldna.data import flickr8k, prepare
from dldna.data.flickr8k import (
    CaptionFileError,
    CorruptImageError,
    DatasetLayoutError,
    Flickr8kDataset,
    download_flickr8k,
    image_level_split,
    load_or_create_split,
    read_captions,
)
from dldna.runtime import ResourceUnavailableError, Runtime

A, B, C = "1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg"


def write_image(path: Path, colour=(200, 30, 30), size=(20, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")


def make_data(root: Path, lines: list[str], images: list[str]) -> Path:
    """A hand-made Flickr8k-layout folder: ``lines`` verbatim, ``images`` written."""
    (root / "Images").mkdir(parents=True, exist_ok=True)
    for name in images:
        write_image(root / "Images" / name)
    (root / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


STANDARD = [
    "image,caption",
    f"{A},A child in a pink dress is climbing up a set of stairs .",
    f"{A},A girl, smiling, goes into a wooden building .",
    "",
    f'{B},"A black dog and a spotted dog, fighting ."',
    f'{B},"She said ""hi"" to the dog ."',
    f"{C},A little girl covered in paint .",
]


class CountingTokenizer:
    """Stands in for a Hugging Face tokenizer and counts how often it is called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts, padding, truncation, max_length, return_tensors):
        assert padding == "max_length" and truncation and return_tensors == "pt"
        self.calls += 1
        ids = torch.zeros(len(texts), max_length, dtype=torch.long)
        mask = torch.zeros(len(texts), max_length, dtype=torch.long)
        for i, text in enumerate(texts):
            n = min(len(text.split()), max_length)
            ids[i, :n] = torch.arange(1, n + 1)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask}


# ----------------------------------------------------------------------- read_captions


def test_header_skipped_commas_and_quotes_kept(tmp_path):
    root = make_data(tmp_path, STANDARD, [])
    pairs = read_captions(root / "captions.txt")
    assert [name for name, _ in pairs] == [A, A, B, B, C]
    assert "image" not in {name for name, _ in pairs}  # erratum 1
    assert pairs[1][1] == "A girl, smiling, goes into a wooden building ."
    assert pairs[2][1] == "A black dog and a spotted dog, fighting ."
    assert pairs[3][1] == 'She said "hi" to the dog .'


def test_byte_order_mark_and_crlf(tmp_path):
    (tmp_path / "captions.txt").write_bytes(f"\ufeffimage,caption\r\n{A},A dog .\r\n".encode())
    assert read_captions(tmp_path / "captions.txt") == [(A, "A dog .")]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("just some text without separator", "no comma"),
        (f"{A},   ", "empty caption"),
        ("image,caption", "not an image file name"),
        ("photo_123,A dog .", "not an image file name"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, bad_line, reason):
    path = tmp_path / "captions.txt"
    path.write_text("\n".join(["image,caption", f"{A},A dog .", bad_line, f"{B},A cat ."]) + "\n")
    with pytest.raises(CaptionFileError, match=reason) as info:
        read_captions(path)
    assert "line 3" in str(info.value) and str(path) in str(info.value)


def test_missing_caption_file_describes_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match="captions.txt") as info:
        read_captions(tmp_path / "captions.txt")
    assert isinstance(info.value, FileNotFoundError)


# -------------------------------------------------------------------------- dataset


def test_pairs_index_and_plain_items(tmp_path):
    root = make_data(tmp_path, STANDARD, [A, B, C])
    ds = Flickr8kDataset(root / "Images", root / "captions.txt")
    assert len(ds) == 5
    assert ds.image_names == [A, B, C]
    assert ds.image_index == [0, 0, 1, 1, 2]
    assert ds.captions_by_image[B] == [ds.pairs[2][1], ds.pairs[3][1]]
    image, caption = ds[3]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and caption == 'She said "hi" to the dog .'


def test_transform_tokenizer_called_once(tmp_path):
    from torchvision import transforms

    root = make_data(tmp_path, STANDARD, [A, B, C])
    tok = CountingTokenizer()
    ds = Flickr8kDataset(
        root / "Images", root / "captions.txt", transform=transforms.ToTensor(), tokenizer=tok, max_length=8
    )
    assert tok.calls == 1
    for epoch in range(2):
        for i in range(len(ds)):
            image, ids, mask = ds[i]
    assert tok.calls == 1
    assert image.shape == (3, 16, 20)
    assert ids.shape == mask.shape == (8,) and int(mask.sum()) == len(ds.pairs[-1][1].split())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert [t.shape for t in batch] == [(5, 3, 16, 20), (5, 8), (5, 8)]


def test_real_fast_tokenizer_from_local_vocab(tmp_path):
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "child", "dog", "girl", ".", ","]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    # from_pretrained on a local folder reads vocab.txt in transformers 4.x and 5.x alike
    # (5.x silently ignores BertTokenizerFast(vocab_file=...)).
    tokenizer = BertTokenizerFast.from_pretrained(tmp_path)
    root = make_data(tmp_path / "d", STANDARD, [A, B, C])
    ds = Flickr8kDataset(root / "Images", root / "captions.txt", tokenizer=tokenizer, max_length=6)
    _, ids, mask = ds[0]
    assert ids.tolist()[:3] == [2, 5, 6]  # [CLS] a child
    assert ds.input_ids.shape == (5, 6) and mask.dtype == torch.long


def test_missing_images_warned_once_and_dropped(tmp_path, caplog):
    root = make_data(tmp_path, STANDARD, [A, C])
    with caplog.at_level(logging.WARNING, logger="dldna.data.flickr8k"):
        ds = Flickr8kDataset(root / "Images", root / "captions.txt", tokenizer=CountingTokenizer())
        for i in range(len(ds)):
            ds[i]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1 of 3" in warnings[0].getMessage() and B in warnings[0].getMessage()
    assert ds.image_names == [A, C] and ds.image_index == [0, 0, 1]
    assert ds.input_ids.shape[0] == 3


def test_all_images_missing_is_an_error(tmp_path):
    root = make_data(tmp_path, STANDARD, [])
    with pytest.raises(DatasetLayoutError, match="None of the 3 images"):
        Flickr8kDataset(root / "Images", root / "captions.txt")


def test_corrupt_image_error_names_file(tmp_path):
    root = make_data(tmp_path, STANDARD, [A, B, C])
    (root / "Images" / B).write_bytes(b"\xff\xd8\xff this is not a jpeg")
    ds = Flickr8kDataset(root / "Images", root / "captions.txt")
    ds[0]
    with pytest.raises(CorruptImageError, match=B):
        ds[2]


def test_truncated_image_error_names_file(tmp_path):
    root = make_data(tmp_path, STANDARD, [A, B, C])
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buffer, format="JPEG")
    (root / "Images" / C).write_bytes(buffer.getvalue()[:300])
    with pytest.raises(CorruptImageError, match=C):
        Flickr8kDataset(root / "Images", root / "captions.txt")[4]


def test_wrong_directory_explains_layout_and_generator(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        Flickr8kDataset(tmp_path / "nowhere" / "Images", tmp_path / "nowhere" / "captions.txt")
    message = str(info.value)
    assert "Images/*.jpg" in message and "image,caption" in message
    assert "python -m dldna.data.shapes --out" in message and "download_flickr8k" in message
    (tmp_path / "Images").mkdir()
    with pytest.raises(DatasetLayoutError, match="captions.txt"):
        Flickr8kDataset(tmp_path / "Images", tmp_path / "captions.txt")


def test_images_subset_and_unknown_names(tmp_path):
    root = make_data(tmp_path, STANDARD, [A, B, C])
    ds = Flickr8kDataset(root / "Images", root / "captions.txt", images=[C, A])
    assert ds.image_names == [A, C] and ds.image_index == [0, 0, 1]
    with pytest.raises(ValueError, match="not in"):
        Flickr8kDataset(root / "Images", root / "captions.txt", images=["9999999999_0000000000.jpg"])


def test_reads_generated_shapes(tmp_path):
    from dldna.data.shapes import generate_dataset

    root = generate_dataset(tmp_path / "s", 6, seed=0, image_size=32)
    ds = Flickr8kDataset(root / "Images", root / "captions.txt")
    assert len(ds) == 30 and len(ds.image_names) == 6 and ds[29][0].size == (32, 32)


# --------------------------------------------------------------------------- splits

NAMES = [f"{i:010d}_abcdef0123.jpg" for i in range(200)]


def test_split_by_image_no_overlap_and_seeded():
    s0 = image_level_split(NAMES, seed=0)
    sets = [set(s0[k]) for k in ("train", "val", "test")]
    assert [len(s) for s in sets] == [160, 20, 20]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(NAMES)
    assert image_level_split(list(reversed(NAMES)) + NAMES[:10], seed=0) == s0
    assert image_level_split(NAMES, seed=1)["val"] != s0["val"]
    tiny = image_level_split(NAMES[:3], seed=0)
    assert [len(tiny[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    with pytest.raises(ValueError, match="sum to 1"):
        image_level_split(NAMES, fractions=(0.5, 0.1, 0.1))


def test_split_file_saved_and_reused(tmp_path, monkeypatch):
    first = load_or_create_split(tmp_path, NAMES, seed=7)
    saved = tmp_path / "splits-seed7.json"
    assert json.loads(saved.read_text())["splits"] == first

    def fail(*args, **kwargs):
        raise AssertionError("the saved split must be reused")

    with monkeypatch.context() as m:
        m.setattr(flickr8k, "image_level_split", fail)
        assert load_or_create_split(tmp_path, reversed(NAMES), seed=7) == first
    # Another image set: the stale file is replaced.
    other = load_or_create_split(tmp_path, NAMES[:50], seed=7)
    assert sum(len(v) for v in other.values()) == 50
    assert json.loads(saved.read_text())["splits"] == other


def test_split_falls_back_to_cache_when_read_only(tmp_path, monkeypatch, caplog):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("DLDNA_CACHE_DIR", str(cache))
    real_write = flickr8k._write_json_atomic

    def read_only(path, payload):
        if data in path.parents:
            raise PermissionError(f"read-only: {path}")
        real_write(path, payload)

    monkeypatch.setattr(flickr8k, "_write_json_atomic", read_only)
    with caplog.at_level(logging.INFO, logger="dldna.data.flickr8k"):
        splits = load_or_create_split(data, NAMES, seed=0)
    assert not (data / "splits-seed0.json").exists()
    cached = list(cache.rglob("splits-seed0.json"))
    assert len(cached) == 1 and "instead" in caplog.text
    monkeypatch.setattr(flickr8k, "image_level_split", lambda *a, **k: pytest.fail("cache not reused"))
    assert load_or_create_split(data, NAMES, seed=0) == splits


# ------------------------------------------------------------------------- download


def test_download_fails_fast_when_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "host_reachable", lambda host, *a, **k: False)
    monkeypatch.setattr(flickr8k.urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    start = time.perf_counter()
    with pytest.raises(ResourceUnavailableError, match="Flickr8k"):
        download_flickr8k(tmp_path / "f8k")
    assert time.perf_counter() - start < 2.0
    assert not (tmp_path / "f8k").exists()


def _small_flickr(monkeypatch, n_images: int = 2, n_captions: int = 4) -> None:
    monkeypatch.setattr(flickr8k, "FLICKR8K_IMAGES", n_images)
    monkeypatch.setattr(flickr8k, "FLICKR8K_CAPTIONS", n_captions)


def test_download_is_idempotent_without_network(tmp_path, monkeypatch):
    root = make_data(tmp_path / "f8k", [f"{A},a .", f"{A},b .", f"{B},c .", f"{B},d ."], [A, B])
    _small_flickr(monkeypatch)
    monkeypatch.setattr(runtime, "host_reachable", lambda *a, **k: pytest.fail("network checked"))
    assert download_flickr8k(root) == root


class FakeResponse(io.BytesIO):
    status = 200


def test_download_unpacks_and_verifies(tmp_path, monkeypatch):
    """The whole download path, with a tiny zip served by a fake urlopen."""
    src = make_data(tmp_path / "src", ["image,caption", f"{A},a .", f"{A},b .", f"{B},c .", f"{B},d ."], [A, B])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src))
    payload = buffer.getvalue()
    _small_flickr(monkeypatch)
    monkeypatch.setattr(flickr8k, "FLICKR8K_ZIP_BYTES", len(payload))
    monkeypatch.setattr(runtime, "host_reachable", lambda *a, **k: True)
    monkeypatch.setattr(flickr8k.urllib.request, "urlopen", lambda *a, **k: FakeResponse(payload))
    root = download_flickr8k(tmp_path / "f8k")
    assert root == tmp_path / "f8k"
    assert len(read_captions(root / "captions.txt")) == 4 and not (root / "flickr8k.zip").exists()

    monkeypatch.setattr(flickr8k, "FLICKR8K_ZIP_BYTES", len(payload) + 1)
    (root / "captions.txt").unlink()  # incomplete copy: downloads again, wrong size
    with pytest.raises(OSError, match="expected"):
        download_flickr8k(root)
    assert not (root / "flickr8k.zip.part").exists()


# -------------------------------------------------------------------------- prepare


def test_prepare_synthetic_profiles(tmp_path):
    smoke_runtime = Runtime(profile="smoke", seed=3)
    smoke = prepare.prepare_caption_data(smoke_runtime, tmp_path / "smoke", n_images=5, image_size=32)
    assert smoke.synthetic and smoke.image_dir == tmp_path / "smoke" / "Images"
    assert len(smoke.image_names()) == 5
    assert json.loads((tmp_path / "smoke" / "dataset.json").read_text())["seed"] == 3
    full_offline = prepare.prepare_caption_data(Runtime(profile="full", offline=True), tmp_path / "full", n_images=4)
    assert full_offline.synthetic and len(full_offline.dataset()) == 20
    split = full_offline.split(seed=0)
    assert sum(len(v) for v in split.values()) == 4 and (tmp_path / "full" / "splits-seed0.json").exists()
    zs = prepare.prepare_zero_shot_data(Runtime(profile="smoke"), tmp_path / "zs", n_images=3, image_size=32)
    assert zs.synthetic and json.loads((tmp_path / "zs" / "dataset.json").read_text())["zero_shot"] is True


def test_prepare_default_folders_and_online(tmp_path, monkeypatch):
    monkeypatch.setenv("DLDNA_DATA_DIR", str(tmp_path))
    smoke = prepare.prepare_caption_data(Runtime(profile="smoke"), n_images=2, image_size=32)
    assert smoke.root == tmp_path / "shapes-smoke"
    calls = []
    monkeypatch.setattr(prepare, "download_flickr8k", lambda dest: calls.append(dest) or Path(dest))
    real = prepare.prepare_caption_data(Runtime(profile="full", offline=False))
    assert calls == [tmp_path / "flickr8k"] and not real.synthetic
    assert real.caption_file == tmp_path / "flickr8k" / "captions.txt"


# ------------------------------------------------------- encodings and the token format


def test_a_caption_file_that_is_not_utf8_names_the_file_line_and_encoding(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_bytes(f"image,caption\n{A},A dog .\n{B},A caf\u00e9 .\n".encode("latin-1"))
    with pytest.raises(CaptionFileError) as info:
        read_captions(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "UTF-8" in message
    assert "b'\\xe9'" in message and "iconv" in message


TOKEN_LINES = [
    f"{A}#0\tA child in a pink dress is climbing up a set of stairs in an entry way .",
    f"{A}#1\tA girl, smiling, goes into a wooden building .",
    f"{B}#0\tA black dog and a spotted dog are fighting",
    "2258277193_586949ec62.jpg.1#0\tA man on a bicycle .",
]


def test_the_original_token_format_is_recognised_and_converted(tmp_path):
    token = tmp_path / "Flickr8k.token.txt"
    token.write_text("\n".join(TOKEN_LINES) + "\n", encoding="utf-8")
    with pytest.raises(CaptionFileError, match=r"line 1: this is the format of Flickr8k's original") as info:
        read_captions(token)
    assert "convert_token_file" in str(info.value) and "captions.txt" in str(info.value)
    converted = flickr8k.convert_token_file(token, tmp_path / "captions.txt")
    assert read_captions(converted) == [
        (A, "A child in a pink dress is climbing up a set of stairs in an entry way ."),
        (A, "A girl, smiling, goes into a wooden building ."),
        (B, "A black dog and a spotted dog are fighting"),
    ]
    with pytest.raises(FileExistsError):
        flickr8k.convert_token_file(token, converted)
