"""Conventions every notebook in every language follows (DESIGN.md, "Languages")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LANGUAGES = sorted(p.name for p in NOTEBOOKS.iterdir() if p.is_dir() and not p.name.startswith("."))
ALL = sorted(NOTEBOOKS.glob("*/*.ipynb"))
ENGLISH = sorted((NOTEBOOKS / "en").glob("*.ipynb"))
NAME = re.compile(r"^10_\d\d_[a-z0-9_]+\.ipynb$")

HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
KANA = re.compile(r"[\u3040-\u30ff]")
HAN = re.compile(r"[\u4e00-\u9fff]")
LEAKED = re.compile(r"严格指令|Strict instructions|As an AI|translation instructions", re.IGNORECASE)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _code_cells(nb):
    return [(_source(c), c.get("metadata", {}).get("tags", [])) for c in nb["cells"] if c["cell_type"] == "code"]


def _markdown(nb) -> str:
    return "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


def test_there_are_english_notebooks():
    assert ENGLISH, "notebooks/en is empty"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_named_and_committed_without_outputs(path):
    assert NAME.match(path.name), f"{path.name}: expected 10_NN_<slug>.ipynb"
    nb = _load(path)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path}: commit notebooks without outputs"
            assert cell.get("execution_count") is None, f"{path}: clear execution counts"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_install_cell_then_exactly_one_parameters_cell(path):
    cells = _code_cells(_load(path))
    tagged = [i for i, (_, tags) in enumerate(cells) if "parameters" in tags]
    assert len(tagged) == 1, f"{path}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0] == 1, "the parameters cell is the second code cell"
    install, install_tags = cells[0]
    assert install == _code_cells(_load(ENGLISH[0]))[0][0], f"{path}: install cell differs from others"
    assert "dldna[colab] @ git+" in install and "hide-input" in install_tags
    params = cells[1][0]
    for name in ("profile: Optional[str] = None", "device: Optional[str] = None", "seed: int ="):
        assert name in params, f"{path}: parameters cell lacks {name!r}"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_papermill_lists_every_parameter_with_its_type(path):
    import ast

    import papermill

    cell = next(c for c in _load(path)["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    assigned = [node.target.id if isinstance(node, ast.AnnAssign) else node.targets[0].id
                for node in ast.parse(_source(cell)).body if isinstance(node, (ast.Assign, ast.AnnAssign))]
    listed = papermill.inspect_notebook(str(path))
    assert list(listed) == assigned, f"{path}: papermill lists {list(listed)}, the cell sets {assigned}"
    untyped = [name for name, p in listed.items() if p["inferred_type_name"] in ("None", "")]
    assert not untyped, f"{path}: annotate {untyped} (e.g. `epochs: int = 5`) for --help-notebook"
    no_help = [name for name, p in listed.items() if not p["help"] and name != "seed"]
    assert not no_help, f"{path}: give {no_help} a trailing comment (papermill's help text)"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_kernelspec_is_ipykernels_own(path):
    # JupyterLab rewrites any other display name on open (a changed tracked file and a new
    # Jupyter Book cache key).
    assert _load(path)["metadata"]["kernelspec"] == {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _run_install_cell(monkeypatch, installed: str | None) -> list[list[str]]:
    """Execute the install cell with ``installed`` as dldna's version; return pip calls."""
    import importlib.metadata
    import subprocess

    def version(name):
        assert name == "dldna"
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    calls = []
    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(subprocess, "check_call", lambda args: calls.append(args))
    exec(compile(_code_cells(_load(ENGLISH[0]))[0][0], "install-cell", "exec"), {})
    return calls


@pytest.mark.parametrize(
    ("installed", "installs"),
    [(None, True), ("0.1.6", True), ("0.9.9", True), ("1.0.0.dev0", False), ("1.2", False)],
)
def test_install_cell_replaces_the_first_editions_package(monkeypatch, installed, installs):
    # PyPI's dldna 0.1.6 is the first edition's package: importable, but without dldna.data.
    calls = _run_install_cell(monkeypatch, installed)
    assert bool(calls) == installs, (installed, calls)
    if installs:
        assert calls[0][-1].startswith("dldna[colab] @ git+https://") and "-U" in calls[0]


def test_install_cell_minimum_is_this_packages_version():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    here = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    found = re.search(r"^MIN_VERSION = \((\d+), (\d+)\)", _code_cells(_load(ENGLISH[0]))[0][0], re.M)
    assert found, "the install cell sets MIN_VERSION = (major, minor)"
    minimum = (int(found.group(1)), int(found.group(2)))
    assert (0, 1) < minimum <= here, f"MIN_VERSION {minimum} against pyproject's {version}"


MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def _headings(nb) -> list[tuple[int, str, int]]:
    """``(level, text, cell index)`` of every markdown heading outside fenced code."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        fenced = False
        for line in _source(cell).splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            match = None if fenced else MARKDOWN_HEADING.match(line)
            if match:
                found.append((len(match.group(1)), match.group(2), index))
    return found


def _page(path: Path) -> int:
    return int(path.name[3:5])  # 10_07_vit.ipynb is section 10.7 of the book


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_headings_are_numbered_as_sections_of_their_page(path):
    """Page 10.N: one title, then 10.N.1, 10.N.2, ... with 10.N.k.m below them, in order."""
    headings = _headings(_load(path))
    assert headings and headings[0][0] == 1, f"{path}: the first heading is the page title (#)"
    assert [level for level, _, _ in headings].count(1) == 1, f"{path}: one # title only"
    counters: list[int] = []
    for level, text, _ in headings[1:]:
        depth = level - 1
        assert depth <= len(counters) + 1, f"{path}: {text!r} skips a heading level"
        counters = counters[:depth]
        counters += [0] * (depth - len(counters))
        counters[-1] += 1
        number = ".".join(map(str, (10, _page(path), *counters)))
        assert text.startswith(number + " "), f"{path}: heading {text!r} should be numbered {number}"


def _exercise_section(path: Path):
    """The headings and cells of the page's last level-2 section (its exercises)."""
    nb = _load(path)
    headings = _headings(nb)
    last = max(i for i, (level, _, _) in enumerate(headings) if level == 2)
    return nb, headings[last], [h for h in headings[last + 1:] if h[0] == 3]


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_every_page_ends_with_exercises_and_folded_solutions(path):
    nb, (_, title, start), exercises = _exercise_section(path)
    if path.parent.name == "en" and _page(path) != 10:
        assert title.endswith(" Exercises"), f"{path}: the last section is {title!r}, not the exercises"
    if _page(path) == 10:  # the exercise page: its questions sit in three level-2 sections
        exercises = [h for h in _headings(nb) if h[0] == 3]
        start = exercises[0][2]
    assert 3 <= len(exercises) <= 5 or _page(path) == 10, (
        f"{path}: {len(exercises)} exercises in {title!r}, expected 3 to 5")
    cells = nb["cells"][start:]
    text = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert text.count(":::{dropdown}") >= len(exercises), (
        f"{path}: every exercise needs a folded solution (:::{{dropdown}} Solution ... :::)")
    unfolded = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
                and "hide-input" not in c.get("metadata", {}).get("tags", [])]
    assert not unfolded, f"{path}: code solutions must be tagged hide-input (folded on the site)"


PAGE_WIDTH = 88  # characters a code box on the site shows without scrolling


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_code_lines_fit_the_page(path):
    long = [(i, line) for i, (source, _) in enumerate(_code_cells(_load(path)))
            for line in source.splitlines() if len(line) > PAGE_WIDTH]
    assert not long, (
        f"{path}: {len(long)} code line(s) over {PAGE_WIDTH} characters, cut off on the site; "
        f"first in code cell {long[0][0]}: {long[0][1][:60]}..." if long else "")


def _listings() -> list[tuple[str, str]]:
    """``(notebook, expression)`` for every ``show_source(expression)`` in the English notebooks."""
    import ast

    found = []
    for path in ENGLISH:
        for source, _ in _code_cells(_load(path)):
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "show_source":
                    found.append((path.name, ast.unparse(node.args[0])))
    return found


@pytest.mark.parametrize(
    ("notebook", "expression"), _listings(), ids=[f"{n}:{e}" for n, e in _listings()]
)
def test_listings_fit_the_page(notebook, expression):
    """What ``show_source`` lists comes from the package: its lines must fit as well."""
    import ast

    from dldna.display import show_source

    namespace: dict = {}
    for source, _ in _code_cells(_load(NOTEBOOKS / "en" / notebook)):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dldna"):
                exec(compile(ast.Module([node], []), notebook, "exec"), namespace)
    listing = str(show_source(eval(expression, namespace)))
    long = [line for line in listing.splitlines() if len(line) > PAGE_WIDTH]
    assert not long, f"{notebook}: show_source({expression}) has {len(long)} line(s) over {PAGE_WIDTH}"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_code_is_english(path):
    for source, _ in _code_cells(_load(path)):
        assert not (HANGUL.search(source) or KANA.search(source) or HAN.search(source)), (
            f"{path}: code cells (comments, printed text, labels) must be English"
        )


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_language_has_the_same_notebooks_and_code(lang):
    assert sorted(p.name for p in (NOTEBOOKS / lang).glob("*.ipynb")) == [p.name for p in ENGLISH]
    for en_path in ENGLISH:
        other = _load(NOTEBOOKS / lang / en_path.name)
        assert _code_cells(other) == _code_cells(_load(en_path)), f"{lang}/{en_path.name}: code differs from en"
        en_heads = [line.count("#") for line in _markdown(_load(en_path)).splitlines() if line.startswith("#")]
        heads = [line.count("#") for line in _markdown(other).splitlines() if line.startswith("#")]
        assert heads == en_heads, f"{lang}/{en_path.name}: headings do not line up with en"


# Reader-facing prose is about the subject, not about the machines the book was made on.
MACHINE_TALK = re.compile(
    r"CPU\s+cores?|\b(?:two|\d+)\s+(?:CPU\s+)?cores\b|\bthreads?\b|\bRSS\b|resident\s+set|"
    r"allocator|uncommitted|git\s+revision|\bgit\s+commit\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("path", ENGLISH, ids=_ids(ENGLISH))
def test_prose_has_no_development_talk(path):
    found = sorted({m.group(0) for m in MACHINE_TALK.finditer(_markdown(_load(path)))})
    assert not found, f"{path}: reader prose mentions {found} (provenance belongs in a folded cell)"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_prose_is_in_its_own_script(path):
    lang, text = path.parent.name, _markdown(_load(path))
    assert not LEAKED.search(text), f"{path}: leaked instructions"
    if lang == "zh":
        assert not HANGUL.search(text) and not KANA.search(text)
    if lang == "ko":
        assert not KANA.search(text)
