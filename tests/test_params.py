"""Parameters are checked where they enter: in ``setup`` and in each notebook's first cell."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dldna import params
from dldna import runtime as rt
from dldna.params import (
    ParameterError,
    check_params,
    choice,
    integer,
    list_of,
    number,
    non_empty_string,
    optional,
    path_like,
    positive_int,
    positive_number,
)

ENGLISH = Path(__file__).resolve().parents[1] / "notebooks" / "en"


# ------------------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    ("value", "rule", "ok"),
    [
        (3, positive_int, True),
        (np.int64(3), positive_int, True),
        (0, positive_int, False),
        (1.7, positive_int, False),
        (3.0, positive_int, False),
        (True, positive_int, False),
        ("3", positive_int, False),
        (1e-4, positive_number, True),
        (2, positive_number, True),
        (0.0, positive_number, False),
        (math.inf, positive_number, False),
        (math.nan, positive_number, False),
        (0.75, number(above=0, below=1), True),
        (1.0, number(above=0, below=1), False),
        (None, optional(positive_int), True),
        ("cls", choice("mean", "cls"), True),
        ("max", choice("mean", "cls"), False),
        (["a", "b"], list_of(non_empty_string), True),
        ([], list_of(non_empty_string), False),
        (["a", ""], list_of(non_empty_string), False),
        ("data/x", path_like, True),
        (Path("data"), path_like, True),
        ("", path_like, False),
    ],
)
def test_rules(value, rule, ok):
    assert rule(value) is ok


def test_one_message_names_each_parameter_value_and_what_is_allowed():
    with pytest.raises(ParameterError) as info:
        check_params(
            epochs=(0, optional(positive_int)),
            lr=(math.inf, positive_number),
            batch_size=(32, positive_int),
        )
    message = str(info.value)
    assert "epochs = 0" in message and "positive integer" in message and "None" in message
    assert "lr = inf" in message and "finite number > 0" in message
    assert "batch_size" not in message


def test_a_list_error_names_the_wrong_item():
    with pytest.raises(ParameterError, match=r"'v99' is not one of 'v0', 'v1'"):
        check_params(versions=(["v0", "v99"], list_of(choice("v0", "v1"))))


def test_a_spec_without_a_rule_is_a_programming_error():
    with pytest.raises(TypeError, match="epochs"):
        check_params(epochs=3)


# ------------------------------------------------------------------------------ setup


@pytest.mark.parametrize("seed", ["abc", 1.5, True, -1, 2**32])
def test_setup_rejects_a_bad_seed(seed):
    with pytest.raises(ParameterError, match=rf"seed = {seed!r} .*integer from 0 to 4294967295"):
        rt.setup("smoke", device="cpu", seed=seed)


def test_setup_accepts_numpy_integers():
    assert rt.setup("smoke", device="cpu", seed=np.int64(3)).seed == 3


def test_cuda_without_cuda_fails_in_setup(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match=r"device = 'cuda' .*no CUDA GPU.*device=None"):
        rt.setup("smoke", device="cuda")


def test_a_missing_gpu_index_and_unknown_names_fail_in_setup(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ParameterError, match=r"device = 'cuda:3' .*1 CUDA GPU"):
        rt.setup("smoke", device="cuda:3")
    with pytest.raises(ParameterError, match=r"device = 'gpu' .*'cpu', 'cuda'"):
        rt.setup("smoke", device="gpu")
    with pytest.raises(ParameterError, match=r"device = 0 "):
        rt.setup("smoke", device=0)


def test_setup_rejects_a_profile_that_is_not_text():
    with pytest.raises(ParameterError, match=r"profile = 1 .*'smoke', 'full'"):
        rt.setup(1, device="cpu")


# -------------------------------------------------------------------------- notebooks


def _first_cells(name: str) -> tuple[str, str]:
    """Source of the parameters cell and of the first code cell after it."""
    (nb_path,) = ENGLISH.glob(f"{name}_*.ipynb")
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    index = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    after = next(c for c in cells[index + 1 :] if c["cell_type"] == "code")
    return "".join(cells[index]["source"]), "".join(after["source"])


def _run_first_cells(name: str, **overrides) -> dict:
    """Run the parameters cell, the overrides (as papermill injects them) and the next cell."""
    parameters, first = _first_cells(name)
    namespace: dict = {}
    exec(compile(parameters, f"{name}:parameters", "exec"), namespace)
    namespace.update(profile="smoke", device="cpu", **overrides)
    exec(compile(first, f"{name}:first cell", "exec"), namespace)
    return namespace


NOTEBOOKS = [p.name[:5] for p in sorted(ENGLISH.glob("10_*.ipynb"))]
WITH_EPOCHS = [n for n in NOTEBOOKS if "\nepochs" in "\n" + _first_cells(n)[0]]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_checks_its_parameters_in_the_first_cell(name):
    parameters, first = _first_cells(name)
    assert "check_params(" in first, f"{name}: the first cell after the parameters calls check_params"
    for line in parameters.splitlines():
        assigned = line.split(":")[0].split("=")[0].strip()
        if assigned.isidentifier() and assigned not in ("profile", "device", "seed") and "=" in line:
            assert f"{assigned}=({assigned}," in first, f"{name}: parameter {assigned} is not checked"
            assert assigned not in params.__all__, f"{name}: importing {assigned} would shadow it"


@pytest.mark.parametrize("name", WITH_EPOCHS)
def test_epochs_zero_fails_in_the_first_cell(name):
    assert {"10_04", "10_05", "10_06", "10_07", "10_08"} <= set(WITH_EPOCHS)
    with pytest.raises(ParameterError, match=r"epochs = 0 .*positive integer"):
        _run_first_cells(name, epochs=0)


@pytest.mark.parametrize("name", ["10_01", "10_06", "10_09"])
def test_seed_abc_fails_in_the_first_cell(name):
    with pytest.raises(ParameterError, match=r"seed = 'abc'"):
        _run_first_cells(name, seed="abc")


def test_unknown_version_fails_before_any_data(monkeypatch):
    import dldna.data

    monkeypatch.setattr(dldna.data, "prepare_caption_data", lambda *a, **k: pytest.fail("data generated"))
    for value in (["v99"], "v0,v99"):
        with pytest.raises(ParameterError, match=r"versions = .*'v99' is not one of 'v0'"):
            _run_first_cells("10_06", versions=value)
    assert _run_first_cells("10_06", versions="v0, v9")["versions"] == ["v0", "v9"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_defaults_pass(name):
    namespace = _run_first_cells(name)
    assert namespace["run"].profile == "smoke"
    if name in WITH_EPOCHS:
        assert namespace["epochs"] >= 1
