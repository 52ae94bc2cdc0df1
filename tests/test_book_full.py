"""make book-full: stored full-profile executions are used only while the code matches."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

REPO = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location("book_full", REPO / "scripts" / "book_full.py")
book_full = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book_full)

FIRST, SECOND = "10_01_introduction.ipynb", "10_02_captioning_and_vqa.ipynb"


def _executed_copy(name: str, folder: Path, change_code: bool = False) -> None:
    """What papermill leaves behind: the notebook with outputs (and here a device line)."""
    notebook = json.loads((REPO / "notebooks" / "en" / name).read_text(encoding="utf-8"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    code[0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "profile=full device=cuda\n"}]
    if change_code:
        code[-1]["source"] = "print('an older version of this cell')\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(notebook), encoding="utf-8")


def test_code_hash_ignores_markdown_and_outputs():
    notebook = json.loads((REPO / "notebooks" / "en" / FIRST).read_text(encoding="utf-8"))
    before = book_full.code_hash(notebook)
    notebook["cells"][0]["source"] = "# another title"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x"}]
    assert book_full.code_hash(notebook) == before
    next(c for c in notebook["cells"] if c["cell_type"] == "code")["source"] = "x = 1"
    assert book_full.code_hash(notebook) != before


def test_stage_uses_matching_executions_and_falls_back_to_smoke(tmp_path):
    executed, store, stage = tmp_path / "executed", tmp_path / "store", tmp_path / "stage"
    _executed_copy(FIRST, executed)
    _executed_copy(SECOND, executed, change_code=True)
    # the store hashes the *current* source, so age the second by editing its stored hash
    assert sorted(book_full.store(executed, store, mirror=True)) == [FIRST, SECOND]
    stored_second = json.loads((store / "en" / SECOND).read_text(encoding="utf-8"))
    stored_second["metadata"][book_full.KEY]["code_hash"] = "0" * 64
    (store / "en" / SECOND).write_text(json.dumps(stored_second), encoding="utf-8")
    meta = json.loads((store / "en" / FIRST).read_text(encoding="utf-8"))["metadata"][book_full.KEY]
    assert meta["profile"] == "full" and meta["device"] == "cuda" and meta["mirror"] is True
    assert meta["versions"]["torch"] and meta["versions"]["transformers"]

    decisions = book_full.stage(store, stage)
    assert decisions[f"notebooks/en/{FIRST}"] == "full"
    assert decisions[f"notebooks/en/{SECOND}"].startswith("smoke: its code changed")
    assert decisions["notebooks/en/10_03_fusion.ipynb"].startswith("smoke: there is no stored")

    first = json.loads((stage / "notebooks" / "en" / FIRST).read_text(encoding="utf-8"))
    assert "full** profile" in first["cells"][0]["source"] and "cuda" in first["cells"][0]["source"]
    assert any(c.get("outputs") for c in first["cells"] if c["cell_type"] == "code")
    second = json.loads((stage / "notebooks" / "en" / SECOND).read_text(encoding="utf-8"))
    assert "smoke** profile" in second["cells"][0]["source"]
    assert not any(c.get("outputs") for c in second["cells"] if c["cell_type"] == "code")

    execute = yaml.safe_load((stage / "_config.yml").read_text(encoding="utf-8"))["execute"]
    assert execute["exclude_patterns"] == [f"notebooks/en/{FIRST}"]  # not re-executed
    assert execute["cache"].endswith(".jupyter_cache")


def test_failed_executions_are_not_stored(tmp_path):
    _executed_copy(FIRST, tmp_path / "executed")
    path = tmp_path / "executed" / FIRST
    notebook = json.loads(path.read_text(encoding="utf-8"))
    notebook["cells"][-1]["outputs"] = [{"output_type": "error", "ename": "E", "evalue": "", "traceback": []}]
    notebook["cells"][-1]["cell_type"] = "code"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    assert book_full.store(tmp_path / "executed", tmp_path / "store") == []
