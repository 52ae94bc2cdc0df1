"""The full profile without network: the Hugging Face cache and the local dataset mirrors."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import transformers
from PIL import Image
from torchvision.datasets.cifar import CIFAR10

from dldna import loaders
from dldna import runtime as rt
from dldna.data import cifar, flickr8k, images, shapes
from dldna.data.flickr8k import CorruptImageError, DatasetLayoutError

FULL = rt.Runtime(profile="full", device=torch.device("cpu"))
MARKER = 0.0625  # a value random initialisation never gives every entry of a weight

_spec = importlib.util.spec_from_file_location("full_mirror", Path(__file__).parents[1] / "scripts" / "full_mirror.py")
full_mirror = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(full_mirror)


@pytest.fixture(autouse=True)
def _local_only(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1, empty caches under tmp_path, and no network check allowed."""
    for name in (*rt.RANDOM_WEIGHTS_VARS, "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    # transformers 4.x copies the cache folder at import; 5.x reads huggingface_hub's
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(tmp_path / "hub"), raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DLDNA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DLDNA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(rt, "host_reachable", lambda *a, **k: pytest.fail("the network was checked"))


def _cache_bert(hub: Path) -> transformers.BertTokenizerFast:
    """A small BertModel whose embedding LayerNorm weight is MARKER, saved as bert-base-uncased."""
    spec = loaders.HUB_SPECS["bert"]
    tokenizer = spec.tokenizer()
    model = spec.model_class(spec.config(tokenizer, True))
    torch.nn.init.constant_(model.embeddings.LayerNorm.weight, MARKER)
    snapshot = hub / "models--bert-base-uncased" / "snapshots" / full_mirror.MIRROR_COMMIT
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (hub / "models--bert-base-uncased" / "refs").mkdir()
    (hub / "models--bert-base-uncased" / "refs" / "main").write_text(full_mirror.MIRROR_COMMIT)
    return tokenizer


# ------------------------------------------------------------------- Hugging Face cache


def test_offline_hub_loads_the_cached_weights(tmp_path):
    tokenizer = _cache_bert(tmp_path / "hub")
    run = rt.setup("full", device="cpu")
    assert not run.synthetic  # HF_HUB_OFFLINE is not a request for random weights
    model, loaded_tokenizer = loaders.load_bert(run)
    assert type(model) is transformers.BertModel and model.config.hidden_size == 64
    assert torch.all(model.embeddings.LayerNorm.weight == MARKER)
    assert loaded_tokenizer("a red circle")["input_ids"] == tokenizer("a red circle")["input_ids"]
    assert loaders.model_source("bert", run) == "bert-base-uncased (pretrained)"


def test_offline_hub_without_the_model_names_it_and_how_to_get_it(tmp_path):
    with pytest.raises(rt.ResourceUnavailableError) as info:
        loaders.load_vilt_vqa(FULL)
    message = str(info.value)
    assert "'dandelin/vilt-b32-finetuned-vqa' is not available locally" in message
    assert str(tmp_path / "hub") in message and "HF_HUB_OFFLINE=1" in message
    assert "snapshot_download('dandelin/vilt-b32-finetuned-vqa')" in message
    # no LocalEntryNotFoundError / OSError tracebacks in front of the message
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_torchvision_weights_come_from_torchs_cache(tmp_path):
    with pytest.raises(rt.ResourceUnavailableError, match="resnet18-f37072fd.pth"):
        loaders.load_resnet(FULL)
    full_mirror.build_torch_cache(tmp_path / "torch")
    trunk = loaders.load_image_backbone(FULL)
    assert trunk.out_channels == 512


# ------------------------------------------------------------------------- Flickr8k


def _flickr_zip(path: Path, monkeypatch, n_images: int = 3) -> Path:
    source = path.parent / "source"
    shapes.generate_dataset(source, n_images, seed=0, image_size=32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(source / "captions.txt", "captions.txt")
        for image in sorted((source / "Images").iterdir()):
            zf.write(image, f"Images/{image.name}")
    monkeypatch.setattr(flickr8k, "FLICKR8K_IMAGES", n_images)
    monkeypatch.setattr(flickr8k, "FLICKR8K_CAPTIONS", 5 * n_images)
    monkeypatch.setattr(flickr8k, "FLICKR8K_ZIP_BYTES", path.stat().st_size)
    return path


@pytest.mark.parametrize("where", ["cache", "data"])
def test_flickr8k_zip_mirror_is_unpacked_and_verified(tmp_path, monkeypatch, where):
    archive = _flickr_zip(tmp_path / where / "flickr8k.zip", monkeypatch)
    dest = tmp_path / "data" / "flickr8k"
    root = flickr8k.download_flickr8k(dest)
    assert root == dest and len(flickr8k.read_captions(root / "captions.txt")) == 15
    assert archive.is_file()  # a mirror is left where it was
    assert flickr8k.download_flickr8k(dest) == dest  # the unpacked copy is reused


def test_flickr8k_zip_of_the_wrong_size_is_refused(tmp_path, monkeypatch):
    archive = _flickr_zip(tmp_path / "cache" / "flickr8k.zip", monkeypatch)
    monkeypatch.setattr(flickr8k, "FLICKR8K_ZIP_BYTES", archive.stat().st_size + 1)
    with pytest.raises(DatasetLayoutError, match="flickr8k.zip has .* bytes"):
        flickr8k.download_flickr8k(tmp_path / "data" / "flickr8k")


def test_flickr8k_missing_everywhere_lists_the_places(tmp_path):
    with pytest.raises(rt.ResourceUnavailableError) as info:
        flickr8k.download_flickr8k(tmp_path / "data" / "flickr8k")
    assert str(tmp_path / "cache" / "flickr8k.zip") in str(info.value)
    assert "HF_HUB_OFFLINE=1" in str(info.value)


# -------------------------------------------------------------------------- CIFAR-10


def test_cifar10_tarball_mirror_is_verified_and_read(tmp_path, monkeypatch):
    (tmp_path / "cache").mkdir()
    sums = full_mirror.build_cifar10(tmp_path / "cache", tmp_path / "scratch")
    monkeypatch.setattr(CIFAR10, "train_list", sums["train_list"])
    monkeypatch.setattr(CIFAR10, "test_list", sums["test_list"])
    monkeypatch.setattr(CIFAR10, "meta", dict(CIFAR10.meta, md5=sums["meta_md5"]))
    monkeypatch.setattr(CIFAR10, "tgz_md5", sums["tgz_md5"])
    train = cifar.load_cifar10(FULL, train=True, image_size=32, max_items=7)
    test = cifar.load_cifar10(FULL, train=False, image_size=32)
    assert len(train) == 7 and len(test) == full_mirror.CIFAR_PER_BATCH
    assert train.classes[3] == "cat" and train[0][0].shape == (3, 32, 32)
    assert (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()

    (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"changed")
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)  # and the archive no longer verifies
    with pytest.raises(OSError, match="does not match CIFAR-10's MD5 checksum"):
        cifar.load_cifar10(FULL, train=True)


# ------------------------------------------------------------------------------ COCO


def test_coco_photos_are_read_from_a_val2017_folder(tmp_path):
    folder = tmp_path / "data" / "coco" / "val2017"
    folder.mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "000000039769.jpg")
    photo = images.sample_image("coco_39769", FULL)
    assert photo.size == (40, 30) and photo.getpixel((5, 5))[0] > 150
    (folder / "000000000632.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptImageError, match="000000000632.jpg"):
        images.sample_image("coco_632", FULL)
    with pytest.raises(rt.ResourceUnavailableError, match="000000000139.jpg"):
        images.sample_image("coco_139", FULL)
