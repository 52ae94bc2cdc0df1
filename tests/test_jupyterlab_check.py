"""The JupyterLab check (scripts/jupyterlab_check.py) on DOMs shaped like JupyterLab's.

The check itself runs JupyterLab and Chromium (``make jupyterlab-check``); here its
verdict is tested on hand-made DOMs: rendered MyST passes, raw roles and fences fail, math
braces are not mistaken for roles, and a notebook that did not open is not a pass.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load("browser_check")
lab = _load("jupyterlab_check")


def _cell(body: str, rendered_class: str = "myst") -> str:
    # the editor keeps the MyST source (hidden once rendered); the widget shows the result
    return (
        '<div class="jp-Cell jp-MarkdownCell jp-mod-rendered">'
        '<div class="cm-content">{cite}`key` :::{note}</div>'
        f'<div class="lm-Widget {rendered_class}">{body}</div></div>'
    )


def _dom(*cells: str):
    return lab.parse_html("<html><body>" + "".join(cells) + "</body></html>")


def test_rendered_myst_with_math_passes():
    dom = _dom(
        _cell('<p>Trained on Flickr8k <a href="#c">hodosh2013</a>.</p>'),
        _cell('<p>The score <span class="katex">s_{ij} \\frac{a}{b}</span> and <code>{cite}</code>.</p>'),
        _cell("<p>Plain markdown renderer.</p>", rendered_class="jp-RenderedMarkdown"),
    )
    assert lab.check_notebook(dom, "en/x.ipynb", 3) == []


def test_raw_roles_and_directives_are_found():
    dom = _dom(
        _cell("<p>Trained on Flickr8k {cite}<code>hodosh2013</code>.</p>"),
        _cell("<p>:::{dropdown} Solution</p><p>The answer.</p><p>:::</p>"),
    )
    problems = lab.check_notebook(dom, "en/x.ipynb", 2)
    assert any("cell 1" in p and "{cite}" in p for p in problems), problems
    assert any("cell 2" in p and ":::" in p for p in problems), problems
    assert any("cell 2" in p and "{dropdown}" in p for p in problems), problems


def test_a_notebook_that_did_not_open_or_render_fails():
    assert lab.check_notebook(_dom(), "en/x.ipynb", 5) == [
        "en/x.ipynb: JupyterLab shows 0 markdown cells, the notebook has 5"
    ]
    unrendered = '<div class="jp-Cell jp-MarkdownCell"><div class="cm-content">text</div></div>'
    assert lab.check_notebook(_dom(unrendered), "en/x.ipynb", 1) == [
        "en/x.ipynb: markdown cell 1 is not rendered"
    ]
