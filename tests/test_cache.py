"""The fast data path decodes each image once and yields the same pixels as the slow path."""

import builtins
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dldna.data import cache
from dldna.data.flickr8k import Flickr8kDataset, load_or_create_split
from dldna.data.shapes import generate_dataset
from dldna.loaders import build_wordpiece_tokenizer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_dataset(tmp_path_factory.mktemp("shapes") / "d", 12, seed=1, image_size=48)
    captions = (root / "captions.txt").read_text().splitlines()[1:]
    tokenizer = build_wordpiece_tokenizer([c.split(",", 1)[1] for c in captions], vocab_size=120)
    return Flickr8kDataset(root / "Images", root / "captions.txt", tokenizer=tokenizer, max_length=24)


def test_images_are_decoded_once_and_match(dataset, tmp_path, monkeypatch):
    split = cache.cached_split(dataset, image_size=32, cache_dir=tmp_path)
    assert split.images.shape == (12, 32, 32, 3) and split.images.dtype == np.uint8
    expected = np.asarray(dataset.load_image(dataset.image_names[3]).resize((32, 32), Image.Resampling.BILINEAR))
    assert np.array_equal(split.images[3], expected)
    monkeypatch.setattr(Flickr8kDataset, "load_image", lambda *a: pytest.fail("decoded again"))
    again = cache.cached_split(dataset, image_size=32, cache_dir=tmp_path)
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(again.images, split.images)


def test_epoch_visits_each_image_once(dataset, tmp_path):
    split = cache.cached_split(dataset, image_size=16, cache_dir=tmp_path)
    picked = split.one_caption_per_image(torch.Generator().manual_seed(0))
    assert sorted(split.image_index[picked].tolist()) == list(range(12))
    batches = list(split.batches(5, generator=torch.Generator().manual_seed(0)))
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]
    images, ids, mask = batches[0]
    assert images.shape == (5, 3, 16, 16) and images.dtype == torch.float32
    assert ids.shape == mask.shape == (5, 24)


def test_evaluation_walks_every_caption_in_order(dataset, tmp_path):
    split = cache.cached_split(dataset, image_size=16, cache_dir=tmp_path)
    ids = torch.cat([b[1] for b in split.batches(7, shuffle=False)])
    assert torch.equal(ids, dataset.input_ids)
    assert len(split) == len(dataset) == 60


def test_normalisation_matches_torchvision():
    from torchvision import transforms

    pixels = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    ours = cache.normalize_uint8(pixels)
    ref = torch.stack(
        [transforms.Normalize(cache.IMAGENET_MEAN, cache.IMAGENET_STD)(transforms.ToTensor()(p.numpy())) for p in pixels]
    )
    assert torch.allclose(ours, ref, atol=1e-6)


def test_needs_a_tokenised_dataset(dataset):
    plain = Flickr8kDataset(dataset.image_dir, dataset.caption_file)
    with pytest.raises(ValueError, match="tokenizer"):
        cache.cached_split(plain, 16)


# ------------------------------------------------------------ damaged or read-only caches


def _cache_file(folder):
    (path,) = folder.glob("images-*px-*.npy")
    return path


@pytest.mark.parametrize("keep", [0.5, 0.003], ids=["data cut short", "header cut short"])
def test_a_truncated_cache_is_named_and_rebuilt(dataset, tmp_path, caplog, keep):
    first = np.array(cache.cached_split(dataset, image_size=16, cache_dir=tmp_path).images)
    path = _cache_file(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:  # what a full disk or a killed copy leaves
        f.truncate(int(size * keep))
    with caplog.at_level(logging.WARNING, logger="dldna.data.cache"):
        again = cache.cached_split(dataset, image_size=16, cache_dir=tmp_path)
    assert str(path) in caplog.text and "rebuilding" in caplog.text
    assert path.stat().st_size == size
    assert np.array_equal(again.images, first)


def test_a_cache_of_the_wrong_shape_is_rebuilt(dataset, tmp_path, caplog):
    cache.cached_split(dataset, image_size=16, cache_dir=tmp_path)
    path = _cache_file(tmp_path)
    np.save(path, np.zeros((3, 16, 16, 3), dtype=np.uint8))
    with caplog.at_level(logging.WARNING, logger="dldna.data.cache"):
        again = cache.cached_split(dataset, image_size=16, cache_dir=tmp_path)
    assert "expected uint8 (12, 16, 16, 3)" in caplog.text
    assert again.images.shape == (12, 16, 16, 3) and again.images.any()


@pytest.fixture
def read_only(monkeypatch):
    """Make folders read-only: by permissions, and (for root, who ignores them) by refusing
    every write below them in the calls that create files and folders."""
    folders = []
    real_open, real_os_open, real_mkdir, real_replace = builtins.open, os.open, os.mkdir, os.replace

    def inside(path) -> bool:
        try:
            resolved = Path(os.fsdecode(path)).resolve()
        except TypeError:  # a file descriptor
            return False
        return any(resolved == f or f in resolved.parents for f in folders)

    def refuse(path):
        raise PermissionError(13, "Permission denied (read-only)", os.fsdecode(path))

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if inside(path) and not os.path.exists(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_replace(src, dst, *args, **kwargs):
        if inside(dst):
            refuse(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_replace)

    def make(folder: Path) -> Path:
        for sub in (folder, *[p for p in folder.rglob("*") if p.is_dir()]):
            sub.chmod(0o555)
        folders.append(folder.resolve())
        return folder

    yield make
    for folder in folders:
        for sub in (folder, *[p for p in folder.rglob("*") if p.is_dir()]):
            sub.chmod(0o755)


def test_read_only_data_caches_images_under_the_cache_dir(tmp_path, monkeypatch, read_only, caplog):
    root = generate_dataset(tmp_path / "data", 6, seed=2, image_size=32)
    tokenizer = build_wordpiece_tokenizer(["a red circle", "a blue square"], vocab_size=60)
    data = Flickr8kDataset(root / "Images", root / "captions.txt", tokenizer=tokenizer, max_length=8)
    monkeypatch.setenv("DLDNA_CACHE_DIR", str(tmp_path / "cache"))
    read_only(root)
    with caplog.at_level(logging.INFO, logger="dldna.data.flickr8k"):
        split = cache.cached_split(data, image_size=16)
    assert not (root / ".cache").exists() and "instead" in caplog.text
    (cached,) = (tmp_path / "cache").rglob("images-16px-*.npy")
    assert split.images.shape == (6, 16, 16, 3)
    monkeypatch.setattr(Flickr8kDataset, "load_image", lambda *a: pytest.fail("decoded again"))
    assert np.array_equal(cache.cached_split(data, image_size=16).images, split.images)
    # The split of the same read-only data falls back to the same place, by the same rule.
    load_or_create_split(root, data.image_names, seed=0)
    assert len(list((tmp_path / "cache").rglob("splits-seed0.json"))) == 1
