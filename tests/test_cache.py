"""The fast data path decodes each image once and yields the same pixels as the slow path."""

import numpy as np
import pytest
import torch
from PIL import Image

from dldna.data import cache
from dldna.data.flickr8k import Flickr8kDataset
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
