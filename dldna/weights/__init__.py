"""Trained weights committed with the package, and the record of how they were made.

``scenes/`` holds the small BLIP, ViLT and CLIP of :mod:`dldna.scene_models` (each in the
folder ``save_pretrained`` writes, with its processor) and ``training.json``: the command,
seed, data version, training time and the figures measured on held-out scenes. This
module only reads that record, so the runtime banner can say what the models are without
importing ``transformers``.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Folder of the scene models (``python -m dldna.scene_models`` writes here by default).
SCENE_WEIGHTS_DIR = Path(__file__).with_name("scenes")


def training_record(weights_dir: str | Path = SCENE_WEIGHTS_DIR) -> dict:
    """``training.json`` of a weights folder: command, seed, data version, time, figures."""
    path = Path(weights_dir) / "training.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: train the scene models with `python -m dldna.scene_models`.")
    return json.loads(path.read_text(encoding="utf-8"))


def training_seconds(weights_dir: str | Path = SCENE_WEIGHTS_DIR) -> float:
    """Seconds the models in ``weights_dir`` trained for (all stages), from ``training.json``."""
    return float(training_record(weights_dir)["training_seconds"])
