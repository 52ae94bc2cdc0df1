"""The floors table and its check."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from dldna.floors import FLOORS, SCENE_PARAMS, FloorError, check_floor, check_floors, floor_of

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks" / "en"


def test_a_figure_at_or_above_its_floor_passes():
    for name, floor in FLOORS.items():
        assert check_floor(name, floor.floor) == floor.floor
        assert check_floor(name, min(1.0, floor.floor + 0.1)) >= floor.floor


def test_a_figure_below_its_floor_names_figure_value_and_floor():
    with pytest.raises(FloorError, match=r"captioning\.objects = 0\.1000 is below its floor 0\.6000"):
        check_floor("captioning.objects", 0.1)
    with pytest.raises(FloorError, match="below its floor"):
        check_floor("clip.zero_shot", math.nan)


def test_all_failures_are_listed_together():
    with pytest.raises(FloorError) as info:
        check_floors({"captioning.objects": 0.0, "captioning.colours": 0.99, "vqa.shape": 0.1})
    message = str(info.value)
    assert "captioning.objects" in message and "vqa.shape" in message and "captioning.colours" not in message


def test_unknown_figure_is_an_error():
    with pytest.raises(KeyError, match="known figures"):
        floor_of("no.such.figure")


def test_floors_are_probabilities_with_a_description():
    for floor in FLOORS.values():
        assert 0.0 < floor.floor <= 1.0 and floor.what
        assert all(value >= floor.floor for value in floor.measured)


def test_a_floor_measured_with_other_parameters_is_not_checked():
    name = "contrastive.nt_xent_knn"
    params = dict(FLOORS[name].params)
    with pytest.raises(FloorError, match=name):
        check_floors({name: 0.2}, params=params)
    assert check_floors({name: 0.2}, params={**params, "train_steps": 10}) == {name: 0.2}


def test_measured_floors_keep_a_margin_below_every_seed():
    for name, floor in FLOORS.items():
        assert floor.measured, f"{name}: the values it was set from"
        assert floor.params, f"{name}: the parameters it was measured with"
        if floor.params is SCENE_PARAMS:  # committed weights: every seed trained reaches the level
            assert len(floor.measured) >= 2 and floor.floor <= min(floor.measured), name
        else:  # trained on the page: seeds 0, 1 and 2, with a margin
            assert len(floor.measured) == 3, name
            assert floor.floor <= min(floor.measured) - 0.05 + 1e-9, name


SCENE_FIGURES = [name for name, floor in FLOORS.items() if floor.params is SCENE_PARAMS]


def _floor_calls():
    """(notebook, figure names or None, params keywords) of every check_floors call."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or "check_floors(" not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check_floors":
                    figures = node.args[0] if node.args else None
                    if isinstance(figures, ast.Dict):
                        names = [k.value for k in figures.keys]
                    elif isinstance(figures, ast.Call) and getattr(figures.func, "id", None) == "floor_figures":
                        names = SCENE_FIGURES  # the scene models' figures, whichever models were measured
                    else:
                        names = None
                    params = next((k.value for k in node.keywords if k.arg == "params"), None)
                    if isinstance(params, ast.Call):  # params=dict(name=value, ...)
                        keys = {k.arg for k in params.keywords}
                    elif isinstance(params, ast.Dict):
                        keys = {k.value for k in params.keys}
                    else:
                        keys = set()
                    yield path.name, names, keys


def test_notebooks_check_known_figures_with_all_their_parameters():
    checked = set()
    for notebook, names, keys in _floor_calls():
        for name in names or ():
            assert name in FLOORS, f"{notebook}: {name!r} has no floor"
            missing = set(FLOORS[name].params) - keys
            assert not missing, f"{notebook}: {name} is checked without its parameters {sorted(missing)}"
            checked.add(name)
    measured = {name for name, floor in FLOORS.items() if floor.measured}
    assert measured <= checked, f"measured floors no notebook checks: {sorted(measured - checked)}"
