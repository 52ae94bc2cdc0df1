"""The lowest value each key figure of the smoke profile may take: one table, one check.

A notebook that measures a key figure ends with ``check_floors({...})``; a figure below
its floor raises :class:`FloorError` naming the figure, its value and its floor, so
``pytest --nbmake`` fails on a silent regression instead of rendering a worse page.

How the floors are set
----------------------
* **Scene models** (pages 10.2 and 10.3; the committed models of
  :mod:`dldna.scene_models`): the command was run for seeds 0, 1 and 2 and ``measured``
  holds the three seeds' values on the first 128 held-out scenes; the models in
  ``dldna/weights/scenes`` are seed 0's, so the notebooks measure exactly its values.
  Captioning, VQA and CLIP are held to fixed levels that all three seeds reach (captioning:
  every object's colour and shape named in 60% of scenes, every colour in 85%; VQA: 70% of
  the questions answered right, 60% of the shape questions, against 31% and 16% for the
  most frequent answer of each question type; CLIP zero-shot over 10 candidates: 50%,
  chance 10%).
* **Training notebooks** (10.4, 10.5, 10.7, 10.8, 10.9): each notebook is run in the
  smoke profile with its default parameters for seeds 0, 1 and 2; ``measured`` holds the
  three values and the floor is the lowest of them minus a margin (a third of its
  distance to chance, at least 0.05; where chance depends on the seed's test images, the
  highest of the three chance levels), rounded down to two decimals, so an ordinary seed
  passes and a broken training loop, which falls to chance, does not. ``params`` are the
  parameters as the smoke profile resolves them (a ``None`` default read as its value).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class FloorError(AssertionError):
    """A key figure fell below its floor."""


@dataclass(frozen=True)
class Floor:
    """The floor of one figure, what it measures, and the values it was set from."""

    floor: float
    what: str
    measured: tuple[float, ...] = ()
    #: The notebook parameters the figure was measured with; other values are not checked.
    params: dict[str, Any] = field(default_factory=dict)


#: The scene models' figures are measured on the first 128 held-out scenes of each set.
SCENE_PARAMS = {"eval_scenes": 128}

#: The training runs of pages 10.4 and 10.8 as their smoke profile resolves them.
_DUAL_ENCODER = {"epochs": 15, "batch_size": 32, "lr": 1e-3, "image_size": 32, "text_pooling": "mean", "data_dir": None}
_CLIP_TRAINING = {"epochs": 30, "batch_size": 34, "lr": 1e-3, "image_size": 32, "width": 64, "layers": 2,
                  "data_dir": None}

FLOORS: dict[str, Floor] = {
    # 10.2 / 10.3: the scene models on held-out scenes
    # Seeds 0, 1, 2; the caption "a purple square" (the most frequent colour and shape): 0.0
    "captioning.objects": Floor(0.60, "scenes whose BLIP caption names every object's colour and shape",
                                measured=(0.8594, 0.8047, 0.8047), params=SCENE_PARAMS),
    # Seeds 0, 1, 2; "a purple square": 0.0469
    "captioning.colours": Floor(0.85, "scenes whose BLIP caption names every object's colour",
                                measured=(0.9688, 0.9297, 0.9766), params=SCENE_PARAMS),
    # Seeds 0, 1, 2 (seed 1's ViLT from train_scene_models with its tower on two threads);
    # the most frequent answer per question type: 0.3124
    "vqa.accuracy": Floor(0.70, "ViLT's VQA accuracy on held-out images",
                          measured=(0.8124, 0.7935, 0.8177), params=SCENE_PARAMS),
    # Seeds 0, 1, 2; the most frequent shape answer: 0.1631
    "vqa.shape": Floor(0.60, "ViLT's VQA accuracy on shape questions, held-out images",
                       measured=(0.9657, 0.9828, 0.9785), params=SCENE_PARAMS),
    # Seeds 0, 1, 2: 0.9375, 0.9922, 0.9219 (held-out colour x shape pairs: 0.9531, 0.9297,
    # 0.8984); chance 0.1
    "clip.zero_shot": Floor(0.50, "CLIP zero-shot top-1 over 10 candidate captions, held-out images",
                            measured=(0.9375, 0.9922, 0.9219), params=SCENE_PARAMS),
    # 10.9: the small NT-Xent run (chance 1/6), seeds 0, 1, 2: 1.0, 0.9967, 1.0
    "contrastive.nt_xent_knn": Floor(
        0.72, "5-NN accuracy on the hidden classes after page 10.9's NT-Xent run",
        measured=(1.0, 0.9967, 1.0), params={"train_steps": 300, "batch_size": 128, "train_temperature": 0.2},
    ),
    # 10.4: the dual encoder on the 26 test images (130 captions).
    # Chance 5/26 = 0.1923, seeds 0, 1, 2: 0.6462, 0.7154, 0.7462
    "retrieval.t2i_recall5": Floor(
        0.49, "text -> image Recall@5 of page 10.4's dual encoder on the test images",
        measured=(0.6462, 0.7154, 0.7462), params=_DUAL_ENCODER,
    ),
    # Chance 0.1807 (any of an image's 5 captions in the top 5 of 130), seeds 0, 1, 2: 0.5385, 0.3846, 0.6923
    "retrieval.i2t_recall5": Floor(
        0.31, "image -> text Recall@5 of page 10.4's dual encoder on the test images",
        measured=(0.5385, 0.3846, 0.6923), params=_DUAL_ENCODER,
    ),
    # 10.5: the cross-modal attention model on the 26 test images (130 captions).
    # Chance 5/26 = 0.1923, seeds 0, 1, 2: 0.6, 0.4077, 0.6692
    "crossattention.t2i_recall5": Floor(
        0.33, "text -> image Recall@5 of page 10.5's cross-modal attention model on the test images",
        measured=(0.6, 0.4077, 0.6692),
        params={"epochs": 6, "batch_size": 16, "lr": 1e-3, "image_size": 32, "data_dir": None},
    ),
    # 10.7: the tiny ViT on 500 test images of the 10 synthetic classes.
    # Chance 1/10, seeds 0, 1, 2: 0.38, 0.318, 0.318
    "vit.test_accuracy": Floor(
        0.24, "test accuracy of page 10.7's tiny ViT after its last epoch",
        measured=(0.38, 0.318, 0.318),
        params={"epochs": 5, "batch_size": 32, "lr": 1e-3, "max_items": 1000, "max_test_items": 500},
    ),
    # 10.8: the small CLIP trained on the page, on its 26 test images (130 captions); its
    # tokenizer is a pure function of the captions, so a seed gives the same figures in every
    # process (seed 0 was run twice). Chance 5/26 = 0.1923, seeds 0, 1, 2: 0.7615, 0.7692, 0.5462
    "clip_training.t2i_recall5": Floor(
        0.42, "text -> image Recall@5 of the CLIP trained on page 10.8, test images",
        measured=(0.7615, 0.7692, 0.5462), params=_CLIP_TRAINING,
    ),
    # Chance 0.264, 0.253, 0.280 (the share of the 7 colours present in a picture; the test images
    # change with the seed), seeds 0, 1, 2: 0.6154, 0.7308, 0.5; the margin is taken from 0.280
    "clip_training.zero_shot_colour": Floor(
        0.42, "zero-shot colour accuracy of the CLIP trained on page 10.8 (caption-style prompts), test images",
        measured=(0.6154, 0.7308, 0.5), params=_CLIP_TRAINING,
    ),
}


def floor_of(name: str) -> Floor:
    if name not in FLOORS:
        raise KeyError(f"No floor for figure {name!r}; known figures: {', '.join(sorted(FLOORS))}.")
    return FLOORS[name]


def check_floor(name: str, value: float) -> float:
    """Return ``value`` if it reaches the floor of ``name``; else raise :class:`FloorError`."""
    floor = floor_of(name)
    value = float(value)
    if math.isnan(value) or value < floor.floor:
        raise FloorError(f"{name} = {value:.4f} is below its floor {floor.floor:.4f} ({floor.what}).")
    return value


def check_floors(figures: Mapping[str, float], params: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Check every figure; raise one :class:`FloorError` listing all that fall short.

    ``params`` are the notebook's parameters: a figure whose floor was measured with other
    values of them (say fewer training steps) is reported but not checked.
    """
    problems = []
    for name, value in figures.items():
        floor = floor_of(name)
        given = params or {}
        changed = {k: given[k] for k in floor.params if k in given and given[k] != floor.params[k]}
        if changed:
            logger.info("%s = %.4f not checked: its floor was measured with %s, this run has %s.",
                        name, value, floor.params, changed)
            continue
        try:
            check_floor(name, value)
        except FloorError as exc:
            problems.append(str(exc))
    if problems:
        raise FloorError("; ".join(problems))
    return dict(figures)
