"""The floors table and its check."""

from __future__ import annotations

import math

import pytest

from dldna.floors import FLOORS, FloorError, check_floor, check_floors, floor_of


def test_a_figure_at_or_above_its_floor_passes():
    for name, floor in FLOORS.items():
        assert check_floor(name, floor.floor) == floor.floor
        assert check_floor(name, min(1.0, floor.floor + 0.1)) >= floor.floor


def test_a_figure_below_its_floor_names_figure_value_and_floor():
    with pytest.raises(FloorError, match=r"vqa\.accuracy = 0\.1000 is below its floor 0\.7000"):
        check_floor("vqa.accuracy", 0.1)
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
