"""The zero-shot check of section 10.6: one unseen photo against five captions.

The original evaluator loaded ``model_final_<version>.pth`` for each version and scored
a cat photo against five captions; a model "trained well" when "A cat sleeping on a
couch" scored highest. It also had a serious bug (erratum 6): it parsed the version from
the file name (``"v10_3"`` became ``"3"``) and loaded the weights with ``strict=False``
after deleting keys, so it could silently score a randomly initialised model.

Here every checkpoint names its own version and carries its full build recipe
(:func:`~dldna.chapter_10.mm.train_multimodal.save_checkpoint`). The evaluator reads the
version *from the checkpoint*, never from the file name, rebuilds the model from the
checkpoint's config and loads it with ``torch.load(weights_only=True)`` and
``load_state_dict(strict=True)``. A checkpoint that is not of the requested version is
rejected with a clear error.

The output keeps the original columns. Note what they can and cannot tell (erratum 8):
``similarity_ratio`` divides the two best *signed* scores, which is meaningless when the
second is near zero or negative; one photo and five captions is an anecdote, not a
retrieval measurement (use the Recall@K of :func:`~dldna.chapter_10.mm.train_multimodal.run_training`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dldna.chapter_10.mm.cross_attention import VERSIONS
from dldna.chapter_10.mm.cross_attention.registry import version_key
from dldna.chapter_10.mm.train_multimodal import CheckpointError, load_checkpoint, read_checkpoint
from dldna.data.cache import normalize_uint8

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "EXPECTED_CAPTION_INDEX",
    "TEST_CAPTIONS",
    "evaluate_all_models",
    "find_checkpoints",
    "load_image_tensor",
    "similarity_summary",
]

#: The five captions of the original zero-shot check; the photo shows a cat.
TEST_CAPTIONS: tuple[str, ...] = (
    "A dog playing in the park",
    "A cat sleeping on a couch",
    "Children playing soccer",
    "A sunset over the ocean",
    "A person cooking in the kitchen",
)
#: Index of the caption that should win ("A cat sleeping on a couch").
EXPECTED_CAPTION_INDEX = 1
#: The original evaluator's columns, in its order.
COLUMNS: tuple[str, ...] = (
    "model_version",
    "best_caption",
    "all_similarities",
    "similarity_ratio",
    "similarity_gap",
    "trained_well",
    "similarity_ratio_rank",
)


def find_checkpoints(model_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Map version -> checkpoint file for every ``*.pth`` in ``model_dir`` (not recursive).

    The version is read from inside each file. Files that are not checkpoints of this
    package are skipped with a warning; two files holding the same version are an error.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"Model folder {folder} does not exist; train with run_training(..., output_dir=...).")
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.pth")):
        try:
            version = read_checkpoint(path)["version"]
        except CheckpointError as exc:
            logger.warning("Skipping %s: %s", path, exc)
            continue
        if version in found:
            raise CheckpointError(
                f"Both {found[version].name} and {path.name} in {folder} hold version {version!r}; "
                "keep one per folder."
            )
        found[version] = path
    return found


def load_image_tensor(image: str | os.PathLike[str] | Image.Image, size: int) -> torch.Tensor:
    """An image file or PIL image -> the normalised ``[1, 3, size, size]`` tensor training used."""
    if not isinstance(image, Image.Image):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"Test image {path} not found.")
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return normalize_uint8(torch.from_numpy(pixels.copy()).unsqueeze(0))  # [1, 3, size, size]


def similarity_summary(
    similarities: Sequence[float], captions: Sequence[str], expected_index: int = EXPECTED_CAPTION_INDEX
) -> dict[str, object]:
    """The original per-model numbers from one row of similarities.

    ``similarity_ratio`` is best / second best and ``similarity_gap`` best - second best,
    as in the original. ``trained_well`` requires the expected caption to score strictly
    above every other: the original also counted a model that gave all five captions the
    same score (v10_2) as trained well.
    """
    scores = np.asarray(similarities, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    best, second = scores[order[0]], scores[order[1]]
    others = np.delete(scores, expected_index)
    return {
        "best_caption": captions[int(order[0])],
        "all_similarities": [round(float(s), 3) for s in scores],
        "similarity_ratio": round(float(best / second), 3) if second != 0 else math.inf,
        "similarity_gap": round(float(best - second), 3),
        "trained_well": bool(scores[expected_index] > others.max()),
    }


@torch.no_grad()
def evaluate_all_models(
    model_dir: str | os.PathLike[str],
    image_path: str | os.PathLike[str] | Image.Image,
    test_captions: Sequence[str] = TEST_CAPTIONS,
    model_versions: Sequence[str] | None = None,
    *,
    expected_index: int = EXPECTED_CAPTION_INDEX,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Score one photo against ``test_captions`` with every checkpoint in ``model_dir``.

    Args:
        model_dir: a folder of checkpoints written by ``run_training`` (one mode and seed,
            e.g. ``runs/ablation/faithful/seed0``).
        image_path: the photo (a path or a PIL image), never seen in training.
        test_captions: candidate captions; ``expected_index`` is the correct one.
        model_versions: versions to evaluate (default: every checkpoint found, in study order).

    Each caption is scored against the photo on its own, through the cross-attention, as
    the original did. Returns the original columns (:data:`COLUMNS`), one row per version.
    """
    captions = list(test_captions)
    if len(captions) < 2 or not 0 <= expected_index < len(captions):
        raise ValueError(
            f"Need at least 2 captions and 0 <= expected_index < {len(captions)}, got expected_index={expected_index}."
        )
    index = find_checkpoints(model_dir)
    if model_versions is None:
        versions = sorted(index, key=version_key)
    else:
        versions = [model_versions] if isinstance(model_versions, str) else list(model_versions)
    missing = [v for v in versions if v not in index]
    if missing:
        held = ", ".join(f"{v} ({p.name})" for v, p in sorted(index.items(), key=lambda kv: version_key(kv[0])))
        raise FileNotFoundError(
            f"No checkpoint of version(s) {missing} in {model_dir}; the checkpoints there hold: {held or 'nothing'}. "
            f"Known versions: {', '.join(VERSIONS)}."
        )

    rows = []
    for version in versions:
        model, tokenizer, payload = load_checkpoint(index[version], expected_version=version, device=device)
        config = payload["config"]
        image = load_image_tensor(image_path, config["image_size"]).to(device)
        encoded = tokenizer(
            captions, padding="max_length", truncation=True, max_length=config["max_length"], return_tensors="pt"
        )
        scores = model.score_matrix(image, encoded["input_ids"].to(device), encoded["attention_mask"].to(device))[0]
        rows.append({"model_version": version, **similarity_summary(scores.tolist(), captions, expected_index)})
        logger.info("%s (%s): best %r", version, index[version].name, rows[-1]["best_caption"])

    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "similarity_ratio_rank"])
    frame["similarity_ratio_rank"] = frame["similarity_ratio"].rank(ascending=False, method="min").astype(int)
    return frame[list(COLUMNS)]
