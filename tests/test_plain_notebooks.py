"""The plain-Markdown copies in colab/ (scripts/plain_notebooks.py): in sync, free of MyST."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("plain_notebooks", ROOT / "scripts" / "plain_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["plain_notebooks"] = module
    spec.loader.exec_module(module)
    return module


plain = _load_script()
SOURCES = plain.sources()
REFERENCES = plain.read_bibliography()


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _markdown(notebook: dict) -> str:
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_copy_is_regenerated_from_its_source(source):
    copy = plain.copy_path(source)
    assert copy.is_file(), f"{copy} is missing: run `python scripts/plain_notebooks.py`"
    assert copy.read_text(encoding="utf-8") == plain.render(source, REFERENCES), (
        f"{copy} is out of date with {source} (it is generated, never edited): "
        "run `python scripts/plain_notebooks.py`"
    )


def test_no_copy_without_a_source():
    wanted = {plain.copy_path(s) for s in SOURCES}
    extra = [p for p in sorted(plain.COPIES.glob("*/*.ipynb")) if p not in wanted]
    assert not extra, f"copies whose source is gone: {extra}"


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_copy_shows_no_raw_myst_and_runs_the_same_code(source):
    copy = json.loads(plain.copy_path(source).read_text(encoding="utf-8"))
    original = json.loads(source.read_text(encoding="utf-8"))
    raw = plain.RAW_MYST.findall(_markdown(copy))
    assert not raw, f"{plain.copy_path(source)} shows raw MyST: {raw[:5]}"
    code = [(c["source"], c["metadata"]) for c in copy["cells"] if c["cell_type"] == "code"]
    assert code == [(c["source"], c["metadata"]) for c in original["cells"] if c["cell_type"] == "code"]
    cited = plain.CITE.findall(_markdown(original))
    if cited:
        assert copy["cells"][-1]["source"][0] == "## References\n"
        for anchor in {k.strip() for _, keys in cited for k in keys.split(",")}:
            assert f'<a id="ref-{anchor}"></a>' in _markdown(copy), anchor


def test_citations_become_author_year_links_with_a_reference_list():
    converter = plain.Converter(REFERENCES, Path("x.ipynb"))
    text = converter.markdown("ViT {cite}`dosovitskiy2021vit`; both {cite}`radford2021clip,jia2021align`.")
    assert "[Dosovitskiy et al., 2021](#ref-dosovitskiy2021vit)" in text
    assert "([Radford et al., 2021](#ref-radford2021clip); [Jia et al., 2021](#ref-jia2021align))" in text
    listing = converter.reference_list()
    assert listing.index("ref-dosovitskiy2021vit") < listing.index("ref-radford2021clip")
    assert "*An Image is Worth 16x16 Words" in listing
    with pytest.raises(KeyError, match="nosuchkey"):
        converter.markdown("{cite}`nosuchkey`")


def test_directives_become_quoted_blocks_and_code_stays_code():
    converter = plain.Converter(REFERENCES, Path("x.ipynb"))
    text = converter.markdown(
        "Before.\n\n:::{dropdown} Solution\n:open:\nThe answer, with $x^2$.\n\n"
        "```{mermaid}\nflowchart LR\n  A --> B\n```\n\n```python\n:::{not a directive}\n```\n:::\n\n"
        "::::{note}\nOuter.\n:::{tip}\nInner.\n:::\n::::\nAfter."
    )
    assert text.split("\n") == [
        "Before.", "",
        "> **Solution**", ">", "> The answer, with $x^2$.", ">",
        "> ```mermaid", "> flowchart LR", ">   A --> B", "> ```", ">",
        "> ```python", "> :::{not a directive}", "> ```", "", "",
        "> **Note**", ">", "> Outer.", "> > **Tip**", "> >", "> > Inner.", ">", "", "After.",
    ]
    with pytest.raises(ValueError, match="unclosed"):
        converter.markdown(":::{note}\nnever closed")


@pytest.mark.parametrize(
    ("text", "raw"),
    [("see {cite}`x2020y`", True), ("{cite:t}`a,b`", True), (":::{note}", True),
     ("```{mermaid}", True), ("a `{name}` field", False), ("```python", False), ("> **Note**", False)],
)
def test_raw_myst_is_recognised(text, raw):
    assert bool(plain.RAW_MYST.search(text)) == raw
