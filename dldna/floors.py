"""The lowest value each key figure of the smoke profile may take: one table, one check.

A notebook that measures a key figure ends with ``check_floors({...})``; a figure below
its floor raises :class:`FloorError` naming the figure, its value and its floor, so
``pytest --nbmake`` fails on a silent regression instead of rendering a worse page.

How the floors are set
----------------------
* **Scene models** (pages 10.2 and 10.3; the models of :mod:`dldna.scene_models`): the
  levels issue 10 asks of them on held-out scenes (captioning: every object's colour and
  shape named in 60% of scenes, every colour in 85%; VQA: 70% overall, 60% on shape
  questions; CLIP zero-shot over 10 candidates: 50%). ``measured`` stays empty until
  trained weights have been measured against them.
* **Training notebooks** (10.4, 10.5, 10.7, 10.8, 10.9): each notebook is run in the
  smoke profile with its default parameters for seeds 0, 1 and 2; ``measured`` holds the
  three values and the floor is the lowest of them minus a margin (a third of its
  distance to chance, at least 0.05), so an ordinary seed passes and a broken training
  loop, which falls to chance, does not.
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


FLOORS: dict[str, Floor] = {
    # 10.2 / 10.3: the scene models on held-out scenes
    "captioning.objects": Floor(0.60, "scenes whose BLIP caption names every object's colour and shape"),
    "captioning.colours": Floor(0.85, "scenes whose BLIP caption names every object's colour"),
    "vqa.accuracy": Floor(0.70, "ViLT's VQA accuracy on held-out images"),
    "vqa.shape": Floor(0.60, "ViLT's VQA accuracy on shape questions, held-out images"),
    "clip.zero_shot": Floor(0.50, "CLIP zero-shot top-1 over 10 candidate captions, held-out images"),
    # 10.9: the small NT-Xent run (chance 1/6), seeds 0, 1, 2: 1.0, 0.9967, 1.0
    "contrastive.nt_xent_knn": Floor(
        0.72, "5-NN accuracy on the hidden classes after page 10.9's NT-Xent run",
        measured=(1.0, 0.9967, 1.0), params={"train_steps": 300, "batch_size": 128, "train_temperature": 0.2},
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
