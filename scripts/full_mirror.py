"""Run the notebooks in the ``full`` profile against local mirrors, without network.

The full profile is what a reader with internet runs: ``from_pretrained`` of every model
and processor, the dataset downloads, their verification and unpacking, and the
notebooks' full-size branches. This script executes that code path on a machine that
cannot reach the Hub or the dataset hosts:

``build DIR`` writes the mirrors a connected machine would have after its first run:

* ``DIR/hf/hub``: a Hugging Face cache in the Hub's layout (``models--org--name/refs/main``
  + ``snapshots/<commit>/``) holding, under the exact ids of ``dldna.loaders.MODEL_IDS``,
  small models of the real classes (``BlipForConditionalGeneration``,
  ``ViltForQuestionAnswering``, ``CLIPModel``, ``ViTModel``, ``BertModel``) with their
  processors and tokenizers, all written by ``save_pretrained``;
* ``DIR/torch/hub/checkpoints/resnet18-f37072fd.pth``: random ResNet-18 weights under the
  file name torchvision expects. torchvision verifies a weight file's SHA-256 only while
  downloading it, so the stand-in loads; its checksum could never match;
* ``DIR/cache/flickr8k.zip``: Flickr8k's zip layout (``Images/*.jpg``, ``captions.txt``),
  synthetic captioned scenes;
* ``DIR/data/coco/val2017/``: the three COCO val2017 file names the chapter uses
  (scikit-image photos);
* ``DIR/cache/cifar-10-python.tar.gz``: CIFAR-10's python layout (``cifar-10-batches-py/
  data_batch_1..5, test_batch, batches.meta``, pickled like the original);
* ``DIR/site/sitecustomize.py``: the one thing a real mirror does not need. The stand-ins
  are smaller than the originals, so their sizes, counts and MD5 checksums are registered
  as the expected ones (``FLICKR8K_*`` and torchvision's CIFAR-10 checksum lists); every
  check still runs. It also records which loaders and readers ran (``calls.jsonl``).

``run DIR`` executes every notebook with papermill in ``profile="full"`` under
``HF_HUB_OFFLINE=1``, with small parameters (epochs, image counts), and writes
``DIR/report.json``: per notebook its time and the loaders and readers it executed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import pickle
import sys
import tarfile
import time
import zipfile
from pathlib import Path

logger = logging.getLogger("full_mirror")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks" / "en"
MIRROR_COMMIT = "0" * 40  # the snapshot folder name (a Hub commit hash)
FLICKR_IMAGES = 100
CIFAR_PER_BATCH = 20

#: Parameters that keep each notebook small; everything else is the full profile's.
SMALL_PARAMETERS: dict[str, dict] = {
    "10_01_introduction": {},
    "10_02_captioning_and_vqa": {"max_new_tokens": 5},
    "10_03_fusion": {"max_new_tokens": 5, "fusion_steps": 20},
    "10_04_multimodal_embedding": {"epochs": 1, "batch_size": 16, "image_size": 64},
    "10_05_cross_modal_attention": {
        "epochs": 1, "batch_size": 16, "image_size": 64, "cost_lengths": [64, 128], "cost_batch_size": 1,
    },
    "10_06_cross_attention_ablation": {"versions": ["v0"], "epochs": 1, "mode": "tokens"},
    "10_07_vit": {"epochs": 1, "batch_size": 5, "max_items": 10, "max_test_items": 5, "num_workers": 0},
    "10_08_clip": {"epochs": 1, "batch_size": 16, "image_size": 32, "width": 32, "layers": 1},
    "10_09_deep_dive_contrastive": {"train_steps": 20, "batch_size": 32},
    "10_10_exercises": {"max_new_tokens": 5, "fusion_steps": 20},
}

#: Functions whose calls the mirror run records: (module, attribute path, label).
RECORDED = [
    ("dldna.loaders", "_from_hub", "from_pretrained"),
    ("dldna.loaders", "_torchvision_weights", "torchvision weights"),
    ("dldna.loaders", "load_image_backbone", "load_image_backbone"),
    ("dldna.loaders", "load_torchvision_vit", "load_torchvision_vit"),
    ("dldna.data.flickr8k", "download_flickr8k", "Flickr8k (download_flickr8k)"),
    ("dldna.data.flickr8k", "Flickr8kDataset.__init__", "Flickr8kDataset"),
    ("dldna.data.cifar", "_real_cifar10", "CIFAR-10 (torchvision CIFAR10)"),
    ("dldna.data.images", "sample_image", "COCO photo (sample_image)"),
]

SITECUSTOMIZE = '''"""Mirror run only: register the stand-in mirrors' sizes and checksums, record calls."""
import functools
import importlib.abc
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "manifest.json"), encoding="utf-8") as _f:
    _MANIFEST = json.load(_f)


def _record(label, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        shown = [a.__name__ for a in args[:1] if isinstance(a, type)] + [a for a in args if isinstance(a, str)]
        entry = {"notebook": os.environ.get("DLDNA_MIRROR_NOTEBOOK", ""), "call": label, "args": shown}
        with open(os.path.join(_HERE, "..", "calls.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\\n")
        return fn(*args, **kwargs)
    return wrapper


def _patch_flickr8k(module):
    for name, value in _MANIFEST["flickr8k"].items():
        setattr(module, name, value)


def _patch_cifar(module):
    spec = _MANIFEST["cifar10"]
    module.CIFAR10.train_list = spec["train_list"]
    module.CIFAR10.test_list = spec["test_list"]
    module.CIFAR10.meta = dict(module.CIFAR10.meta, md5=spec["meta_md5"])
    module.CIFAR10.tgz_md5 = spec["tgz_md5"]


def _recorder(entries):
    def patch(module):
        for attribute, label in entries:
            owner, _, name = attribute.rpartition(".")
            target = getattr(module, owner) if owner else module
            setattr(target, name, _record(label, getattr(target, name)))
    return patch


_PATCHES = {"torchvision.datasets.cifar": [_patch_cifar]}
for _module, _attribute, _label in _MANIFEST["recorded"]:
    _PATCHES.setdefault(_module, []).append(_recorder([(_attribute, _label)]))
_PATCHES.setdefault("dldna.data.flickr8k", []).insert(0, _patch_flickr8k)


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            for patch in _PATCHES[name]:
                patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchAfterImport())
'''


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def build_hub_cache(hub: Path) -> list[str]:
    """Small models of the real classes, saved under the loaders' exact Hub ids."""
    import transformers

    from dldna import loaders

    transformers.utils.logging.disable_progress_bar()
    written = []
    for key, spec in loaders.HUB_SPECS.items():
        repo = hub / ("models--" + spec.repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / MIRROR_COMMIT
        snapshot.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(MIRROR_COMMIT)
        tokenizer = spec.tokenizer()
        model = spec.model_class(spec.config(tokenizer, True))
        model.save_pretrained(snapshot)
        spec.processor(tokenizer, True).save_pretrained(snapshot)
        written.append(f"{spec.repo_id}: {type(model).__name__}")
    return written


def build_torch_cache(torch_home: Path) -> str:
    """Random ResNet-18 weights under the file name of ResNet18_Weights.IMAGENET1K_V1."""
    import torch
    import torchvision

    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    target = torch_home / "hub" / "checkpoints" / Path(weights.url).name
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), target)
    return target.name


def build_flickr8k(cache: Path, scratch: Path) -> dict:
    """A zip in Flickr8k's layout: Images/*.jpg and captions.txt (header, 5 rows per image)."""
    from dldna.data import shapes
    from dldna.data.flickr8k import read_captions

    source = scratch / "flickr8k-source"
    shapes.generate_dataset(source, FLICKR_IMAGES, seed=0)
    archive = cache / "flickr8k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(source / "captions.txt", "captions.txt")
        for image in sorted((source / "Images").iterdir()):
            zf.write(image, f"Images/{image.name}")
    return {
        "FLICKR8K_IMAGES": FLICKR_IMAGES,
        "FLICKR8K_CAPTIONS": len(read_captions(source / "captions.txt")),
        "FLICKR8K_ZIP_BYTES": archive.stat().st_size,
    }


def build_coco(data: Path) -> list[str]:
    """The chapter's three COCO val2017 file names in val2017.zip's layout."""
    from dldna.data.images import SAMPLE_IMAGES, offline_photo

    folder = data / "coco" / "val2017"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for sample in SAMPLE_IMAGES.values():
        name = Path(sample.url).name
        offline_photo(sample.offline).save(folder / name, quality=90)
        names.append(name)
    return names


def build_cifar10(cache: Path, scratch: Path) -> dict:
    """cifar-10-python.tar.gz with the original's files, pickles and keys, fewer images."""
    import numpy as np

    from dldna.data.cifar import SyntheticShapes10

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    folder = scratch / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(batches):
        shapes10 = SyntheticShapes10(CIFAR_PER_BATCH, train=name != "test_batch", image_size=32, seed=b)
        data = np.stack([np.asarray(shapes10.image(i)).transpose(2, 0, 1).reshape(-1) for i in range(len(shapes10))])
        entry = {  # the keys torchvision reads (the original's Python 2 strings, unpickled as latin-1)
            "batch_label": name,
            "labels": list(shapes10.targets),
            "data": data.astype(np.uint8),  # [N, 3072]: 1024 red, 1024 green, 1024 blue
            "filenames": [f"{name}_{i}.png" for i in range(len(shapes10))],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": classes, "num_cases_per_batch": CIFAR_PER_BATCH}, protocol=2)
    )
    archive = cache / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    md5 = {name: _md5(folder / name) for name in batches}
    return {
        "train_list": [[name, md5[name]] for name in batches[:5]],
        "test_list": [["test_batch", md5["test_batch"]]],
        "meta_md5": _md5(folder / "batches.meta"),
        "tgz_md5": _md5(archive),
    }


def environment(root: Path) -> dict[str, str]:
    """The variables of a full-profile run that may use only the mirrors in ``root``."""
    site = str(root / "site")
    return {
        "DLDNA_PROFILE": "full",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(root / "hf"),
        "HF_HUB_CACHE": str(root / "hf" / "hub"),
        "TORCH_HOME": str(root / "torch"),
        "DLDNA_DATA_DIR": str(root / "data"),
        "DLDNA_CACHE_DIR": str(root / "cache"),
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH", "")])),
    }


def build(root: Path) -> dict:
    """Write every mirror under ``root`` (replacing an earlier one) and return a summary."""
    import shutil

    if root.exists():
        shutil.rmtree(root)
    for folder in ("hf/hub", "torch", "data", "cache", "site", "scratch"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = {
        "hub": build_hub_cache(root / "hf" / "hub"),
        "torch": build_torch_cache(root / "torch"),
        "coco": build_coco(root / "data"),
    }
    manifest = {
        "flickr8k": build_flickr8k(root / "cache", root / "scratch"),
        "cifar10": build_cifar10(root / "cache", root / "scratch"),
        "recorded": [list(r) for r in RECORDED],
    }
    shutil.rmtree(root / "scratch")
    (root / "site" / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (root / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = environment(root)
    (root / "env.sh").write_text("".join(f"export {k}={v}\n" for k, v in env.items()), encoding="utf-8")
    summary["flickr8k"] = manifest["flickr8k"]
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary


def _calls(root: Path) -> list[dict]:
    path = root / "calls.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(root: Path, names: list[str] | None = None, out_dir: Path | None = None, timeout: int = 600) -> dict:
    """Execute the notebooks with papermill in the full profile against the mirrors."""
    import papermill

    out_dir = out_dir or root / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment(root)
    saved = {k: os.environ.get(k) for k in [*env, "DLDNA_MIRROR_NOTEBOOK"]}
    os.environ.update(env)
    for name in ("DLDNA_RANDOM_WEIGHTS", "DLDNA_OFFLINE"):
        os.environ.pop(name, None)
        saved.setdefault(name, None)
    report: dict = {"notebooks": {}, "failed": []}
    try:
        for stem in names or list(SMALL_PARAMETERS):
            os.environ["DLDNA_MIRROR_NOTEBOOK"] = stem
            source = NOTEBOOKS / f"{stem}.ipynb"
            parameters = {"profile": "full", **SMALL_PARAMETERS.get(stem, {})}
            start = time.perf_counter()
            error = None
            try:
                papermill.execute_notebook(
                    str(source), str(out_dir / source.name), parameters=parameters, kernel_name="python3",
                    cwd=str(NOTEBOOKS), progress_bar=False, execution_timeout=timeout,
                )
            except Exception as exc:  # noqa: BLE001 (reported, and the run fails below)
                error = " ".join(str(exc).split())[-1500:]
                report["failed"].append(stem)
            seconds = round(time.perf_counter() - start, 1)
            executed = sorted({
                f"{c['call']}({', '.join(c['args'])})" if c["args"] else c["call"]
                for c in _calls(root) if c["notebook"] == stem
            })
            report["notebooks"][stem] = {"seconds": seconds, "parameters": parameters, "executed": executed}
            if error:
                report["notebooks"][stem]["error"] = error
            logger.info("%s: %.1f s%s; %s", stem, seconds, " FAILED" if error else "", "; ".join(executed) or "-")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    (root / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "run", "all"))
    parser.add_argument("root", type=Path, help="folder of the mirrors (rebuilt by build/all)")
    parser.add_argument("--notebooks", nargs="*", default=None, help="notebook stems (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the executed notebooks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = args.root.resolve()
    if args.command in ("build", "all"):
        summary = build(root)
        logger.info("mirrors in %s (%.1f s): %s", root, summary["seconds"], json.dumps(summary))
    if args.command in ("run", "all"):
        report = run(root, args.notebooks, args.out)
        total = sum(n["seconds"] for n in report["notebooks"].values())
        logger.info("full-profile mirror run: %d notebooks, %.0f s, failed: %s",
                    len(report["notebooks"]), total, report["failed"] or "none")
        return 1 if report["failed"] else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
