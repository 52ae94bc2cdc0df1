"""CIFAR-10 loading: the synthetic stand-in, the reuse of a local copy, the offline failure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dldna import runtime
from dldna.data import cifar
from dldna.data.cifar import SYNTHETIC_CLASSES, SyntheticShapes10, load_cifar10
from dldna.runtime import ResourceUnavailableError, Runtime

SMOKE = Runtime(profile="smoke")
FULL_ONLINE = Runtime(profile="full", offline=False)
FULL_OFFLINE = Runtime(profile="full", offline=True)


def test_synthetic_items_look_like_cifar10():
    data = load_cifar10(SMOKE, train=True, image_size=32, max_items=40)
    assert len(data) == 40
    assert data.classes == list(SYNTHETIC_CLASSES) and len(data.classes) == 10
    image, label = data[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert -1.0 <= float(image.min()) and float(image.max()) <= 1.0  # normalised to [-1, 1]
    assert label == 7 and data.targets[:12] == [*range(10), 0, 1]
    assert np.bincount(data.targets).tolist() == [4] * 10  # balanced


def test_synthetic_is_deterministic_and_splits_differ():
    a = load_cifar10(SMOKE, train=True, image_size=24, max_items=5)
    b = load_cifar10(SMOKE, train=True, image_size=24, max_items=5)
    test = load_cifar10(SMOKE, train=False, image_size=24, max_items=5)
    torch.testing.assert_close(a[3][0], b[3][0])
    assert not torch.equal(a[3][0], test[3][0])
    other_seed = load_cifar10(Runtime(profile="smoke", seed=1), train=True, image_size=24, max_items=5)
    assert not torch.equal(a[3][0], other_seed[3][0])
    assert a[3][0].shape == (3, 24, 24)


def test_profile_sizes_and_colour_follows_the_class():
    assert len(load_cifar10(SMOKE, train=False)) == cifar.SYNTHETIC_SIZES["smoke"][1]
    full = load_cifar10(FULL_OFFLINE, train=True, image_size=224)
    assert len(full) == 50_000 and full._rendered is None  # too big to keep in memory
    data = SyntheticShapes10(20, train=True, image_size=32)
    for i in range(20):
        pixels = np.asarray(data.image(i), dtype=float)  # [H, W, 3]
        red_minus_blue = (pixels[..., 0] - pixels[..., 2]).ravel()
        strongest = red_minus_blue[np.abs(red_minus_blue).argmax()]  # on the object, not the dull background
        colour = data.classes[data.targets[i]].split()[0]
        assert (strongest > 0) == (colour == "red"), (i, colour, strongest)


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="max_items"):
        load_cifar10(SMOKE, train=True, max_items=0)
    with pytest.raises(ValueError, match="image_size"):
        load_cifar10(SMOKE, train=True, image_size=8)
    with pytest.raises(IndexError):
        SyntheticShapes10(3, train=True).image(3)


def test_full_profile_offline_fails_fast_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "host_reachable", lambda *a, **k: False)
    with pytest.raises(ResourceUnavailableError, match="CIFAR-10.*www.cs.toronto.edu.*smoke.*DLDNA_RANDOM_WEIGHTS"):
        load_cifar10(FULL_ONLINE, train=True, data_dir=tmp_path)
    assert not any(tmp_path.rglob("*.tar.gz"))  # nothing was downloaded


class _LocalCIFAR10:
    """Stands in for torchvision's CIFAR10 with a complete copy on disk."""

    calls: list[dict] = []

    def __init__(self, root, train, transform, download):
        _LocalCIFAR10.calls.append({"root": root, "train": train, "download": download})
        self.classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        self.targets = [i % 10 for i in range(30)]
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return torch.zeros(3, 4, 4), self.targets[index]


def test_full_profile_reuses_a_local_copy_without_network(tmp_path, monkeypatch):
    _LocalCIFAR10.calls.clear()
    monkeypatch.setattr(cifar.datasets, "CIFAR10", _LocalCIFAR10)
    monkeypatch.setattr(runtime, "host_reachable", lambda *a, **k: pytest.fail("the network was checked"))
    data = load_cifar10(FULL_ONLINE, train=False, image_size=224, data_dir=tmp_path, max_items=12)
    assert _LocalCIFAR10.calls == [{"root": str(tmp_path), "train": False, "download": False}]
    assert len(data) == 12 and data.classes[3] == "cat" and data.targets == [i % 10 for i in range(12)]
    assert data[11][1] == 1


def test_full_profile_downloads_only_after_checking_the_host(tmp_path, monkeypatch):
    class Missing(_LocalCIFAR10):
        def __init__(self, root, train, transform, download):
            super().__init__(root, train, transform, download)
            if not download:
                raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    _LocalCIFAR10.calls.clear()
    checked: list[str] = []
    monkeypatch.setattr(cifar.datasets, "CIFAR10", Missing)
    monkeypatch.setattr(runtime, "host_reachable", lambda host, *a, **k: checked.append(host) or True)
    data = load_cifar10(FULL_ONLINE, train=True, data_dir=tmp_path)
    assert checked == ["www.cs.toronto.edu"]
    assert [c["download"] for c in _LocalCIFAR10.calls] == [False, True]
    assert len(data) == 30
