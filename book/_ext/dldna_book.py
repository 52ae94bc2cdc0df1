"""Local Sphinx extension for the dldna-ch10 book: language editions and offline assets.

What it adds to Jupyter Book 1.x, and why:

* **Editions.** Each folder ``notebooks/<lang>/`` that holds a notebook is one language
  edition, with its index page at ``book/<lang>/index`` and its name taken from the
  caption of its part in ``_toc.yml``; so is a part whose index page is ``book/<lang>/index``
  before its notebooks exist. Adding a language therefore needs no change here.
  Freshness notes and the search of Korean and Chinese text: ``dldna_i18n.py``.
* **Language switcher.** Every page gets ``dldna_editions`` in its template context
  (rendered by ``book/_templates/language-switcher.html``): a link to the same page in
  each edition, or to that edition's index where the page is not translated yet, so a
  reader never lands on a 404. Pages of an edition also get ``<html lang="...">``, which
  browsers use to pick CJK fonts.
* **``dldna-editions`` directive.** The landing page lists the editions with it, from the
  same discovery, so a new language shows up there by itself.
* **Chapter numbering.** Sphinx numbers every numbered toctree from 1 in toc order; this
  is chapter 10 of the book, and ``notebooks/<lang>/10_07_vit`` is its section 10.7 even
  while 10.4 to 10.6 are not written yet. The edition index is "10.", each notebook
  "10.NN" from its file name (``dldna_chapter_number`` = 10).
* **Figures.** Notebook kernels inherit the build's environment; the Makefile exports
  ``MPLBACKEND=Agg`` for the tests, with which ``plt.show()`` draws nothing and the book
  would have no figures. The build sets the inline backend for its kernels.
* **Colab gets the plain copy.** Colab renders no MyST, so its launch button opens
  ``colab/<lang>/X.ipynb`` (made by ``scripts/plain_notebooks.py``: citations as links,
  admonitions as quotes) instead of ``notebooks/<lang>/X.ipynb``, and the page's
  ``.ipynb`` download is that copy too. Binder, which runs JupyterLab with
  ``jupyterlab-myst``, keeps the source. ``dldna_plain_notebooks_dir`` names the folder.
* **Offline assets.** MathJax and mermaid are served from ``_static`` (vendored by
  ``scripts/fetch_web_assets.py``). A missing file is a build warning (an error under
  ``-W``) instead of a silently broken site; pages with diagrams also get a fallback that
  loads mermaid's single-file build when opened from ``file://``, where browsers refuse
  to import ES modules.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

# Used when _toc.yml gives an edition's part no caption: each name in its own language.
DEFAULT_EDITION_NAMES = {"en": "English", "ko": "한국어", "zh": "中文"}


@dataclass(frozen=True)
class Edition:
    """One language edition of the book."""

    code: str  # folder name under notebooks/ and book/, e.g. "ko"
    name: str  # what the switcher shows, e.g. "한국어"
    index: str  # docname of the edition's index page, e.g. "book/ko/index"


@dataclass(frozen=True)
class PageInEdition:
    """A page that belongs to an edition: ``notebooks/<code>/<rest>`` or ``book/<code>/<rest>``."""

    code: str
    folder: str  # "notebooks" or "book"
    rest: str  # the part after the language folder, e.g. "10_02_captioning_and_vqa"

    def in_edition(self, code: str) -> str:
        """Docname of the same page in another edition."""
        return f"{self.folder}/{code}/{self.rest}"


def discover_languages(notebooks_dir: Path, canonical: str) -> list[str]:
    """Language codes of the folders under ``notebooks_dir`` that hold a notebook.

    The canonical language comes first, the others follow in alphabetical order.
    """
    if not notebooks_dir.is_dir():
        return []
    codes = sorted(
        child.name
        for child in notebooks_dir.iterdir()
        if child.is_dir() and not child.name.startswith(".") and any(child.glob("*.ipynb"))
    )
    return sorted(codes, key=lambda code: code != canonical)


def part_captions(site_map: Any) -> dict[str, str]:
    """Map each top-level file of ``_toc.yml`` to the caption of the part that holds it."""
    if site_map is None:
        return {}
    return {
        docname: subtree.caption
        for subtree in site_map.root.subtrees
        if subtree.caption
        for docname in subtree.files()
    }


def editions(app: Sphinx) -> list[Edition]:
    """The editions of this build, discovered once per build from ``notebooks/<lang>/``."""
    cached = getattr(app, "_dldna_editions", None)
    if cached is None:
        cached = app._dldna_editions = _discover_editions(app)  # type: ignore[attr-defined]
    return cached


def _discover_editions(app: Sphinx) -> list[Edition]:
    config = app.config
    captions = part_captions(getattr(config, "external_site_map", None))
    codes = discover_languages(Path(app.srcdir) / config.dldna_notebooks_dir,
                               config.dldna_canonical_language)
    # An edition whose notebooks are not written yet: its index page is in _toc.yml.
    index = re.compile(rf"{re.escape(config.dldna_editions_dir)}/([^/]+)/index")
    codes += sorted({m.group(1) for doc in captions if (m := index.fullmatch(doc))} - set(codes))
    result = []
    for code in sorted(codes, key=lambda code: code != config.dldna_canonical_language):
        index = f"{config.dldna_editions_dir}/{code}/index"
        name = captions.get(index) or DEFAULT_EDITION_NAMES.get(code, code)
        result.append(Edition(code=code, name=name, index=index))
    return result


def page_in_edition(app: Sphinx, docname: str, codes: list[str]) -> PageInEdition | None:
    """Return where ``docname`` sits in an edition, or None for shared pages (landing, bibliography)."""
    parts = docname.split("/", 2)
    folders = {app.config.dldna_notebooks_dir, app.config.dldna_editions_dir}
    if len(parts) == 3 and parts[0] in folders and parts[1] in codes:
        return PageInEdition(code=parts[1], folder=parts[0], rest=parts[2])
    return None


def switcher_links(app: Sphinx, pagename: str) -> list[dict[str, Any]]:
    """Links to ``pagename`` in every edition, falling back to an edition's index page.

    Editions whose index page is not built are left out (``check_editions`` warns about
    them), so every link points at a page that exists.
    """
    found = app.env.found_docs
    available = [edition for edition in editions(app) if edition.index in found]
    here = page_in_edition(app, pagename, [edition.code for edition in available])
    links = []
    for edition in available:
        target = edition.index
        if here is not None and here.in_edition(edition.code) in found:
            target = here.in_edition(edition.code)
        links.append(
            {
                "code": edition.code,
                "name": edition.name,
                # A page's link to itself comes back empty; name the file instead.
                "url": app.builder.get_relative_uri(pagename, target)
                or posixpath.basename(app.builder.get_target_uri(pagename)),
                "current": here is not None and here.code == edition.code,
                "fallback": here is not None and here.in_edition(edition.code) not in found,
            }
        )
    return links


def add_page_context(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Give the templates the language switcher and the page's language."""
    if app.builder.format != "html":
        return
    links = switcher_links(app, pagename)
    context["dldna_editions"] = links
    current = [link["code"] for link in links if link["current"]]
    if current:
        context["language"] = current[0]
    if doctree is not None and _has_mermaid(doctree):
        _add_mermaid_file_fallback(app, context)


def _has_mermaid(doctree: nodes.Node) -> bool:
    try:
        from sphinxcontrib.mermaid import mermaid as mermaid_node
    except ImportError:
        return False
    return doctree.next_node(mermaid_node) is not None


def _add_mermaid_file_fallback(app: Sphinx, context: dict[str, Any]) -> None:
    """Render diagrams from mermaid's single-file build on ``file://`` pages.

    sphinxcontrib-mermaid imports mermaid as an ES module; browsers block module imports
    from ``file://`` URLs, so a reader who opens the built HTML from disk would see empty
    diagrams. Over HTTP this script does nothing.
    """
    local = app.config.mermaid_use_local
    if not local or local.startswith(("http://", "https://", "//", "/")):
        return
    umd = context["pathto"](f"_static/{Path(local).parent.as_posix()}/mermaid.min.js", 1)
    init = dict(app.config.mermaid_init_config or {}, startOnLoad=False)
    body = (
        'if (location.protocol === "file:") {\n'
        '  window.addEventListener("load", () => {\n'
        '    const script = document.createElement("script");\n'
        f"    script.src = {json.dumps(umd)};\n"
        "    script.onload = () => {\n"
        f"      window.mermaid.initialize({json.dumps(init)});\n"
        '      window.mermaid.run({querySelector: ".mermaid"});\n'
        "    };\n"
        "    document.head.appendChild(script);\n"
        "  });\n"
        "}\n"
    )
    app.add_js_file(None, body=body)


class EditionsDirective(SphinxDirective):
    """``dldna-editions``: a bulleted list of links to every edition's index page."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        # The list follows the notebooks/<lang>/ folders, not this file: remember what it
        # was built from, so reread_edition_lists can re-read the page when that changes.
        _edition_lists(self.env)[self.env.docname] = _signature(editions(self.env.app))
        items = nodes.bullet_list(classes=["dldna-editions"])
        for edition in editions(self.env.app):
            reference = addnodes.pending_xref(
                "",
                nodes.inline(text=edition.name),
                refdomain="std",
                reftype="doc",
                reftarget="/" + edition.index,
                refexplicit=True,
                refwarn=True,
                refdoc=self.env.docname,
            )
            items += nodes.list_item("", nodes.paragraph("", "", reference))
        if not items.children:
            logger.warning(
                "dldna-editions: no notebooks/<lang>/ folder with a notebook under %s",
                self.env.srcdir,
                location=(self.env.docname, self.lineno),
            )
        return [items]


def _signature(found: list[Edition]) -> tuple[tuple[str, str, str], ...]:
    return tuple((edition.code, edition.name, edition.index) for edition in found)


def _edition_lists(env: BuildEnvironment) -> dict[str, tuple]:
    """Pages holding a ``dldna-editions`` list, with the editions it was built from."""
    if not hasattr(env, "dldna_edition_lists"):
        env.dldna_edition_lists = {}  # type: ignore[attr-defined]
    return env.dldna_edition_lists  # type: ignore[attr-defined]


def reread_edition_lists(app: Sphinx, env: BuildEnvironment, added: set[str],
                         changed: set[str], removed: set[str]) -> list[str]:
    """Re-read the pages whose list of editions is out of date."""
    current = _signature(editions(app))
    return [doc for doc, seen in _edition_lists(env).items() if seen != current]


def _purge_edition_list(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    _edition_lists(env).pop(docname, None)


def _merge_edition_lists(app: Sphinx, env: BuildEnvironment, docnames: set[str],
                         other: BuildEnvironment) -> None:
    _edition_lists(env).update(_edition_lists(other))


def check_editions(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn about an edition whose index page is missing from the build."""
    for edition in editions(app):
        if edition.index not in env.found_docs:
            logger.warning(
                "%s/%s/ holds notebooks but %s is not in the book: add %s.md and a part "
                "for it in _toc.yml (see the comment there).",
                app.config.dldna_notebooks_dir,
                edition.code,
                edition.index,
                edition.index,
                type="dldna",
                subtype="edition",
            )


SECTION_FILE = re.compile(r"(\d+)_(\d+)_")  # notebooks/<lang>/10_07_vit: chapter 10, section 7


def section_prefix(docname: str, assigned: tuple[int, ...], chapter: int) -> tuple[int, ...]:
    """The number a document's title should carry instead of the ``assigned`` one.

    Sphinx counts from 1 in toc order. A notebook named ``<chapter>_<NN>_...`` becomes
    section ``<chapter>.<NN>`` whatever else is in the toc yet, so numbers never shift
    while the chapter grows; any other numbered page (the edition's index) keeps its
    place, counted from ``chapter``.
    """
    if not assigned:
        return assigned
    match = SECTION_FILE.match(posixpath.basename(docname))
    if match and len(assigned) == 2 and int(match.group(1)) == chapter:
        return (chapter, int(match.group(2)))
    return (assigned[0] + chapter - 1, *assigned[1:])


def _renumber(number: Any, old: tuple[int, ...], new: tuple[int, ...]) -> Any:
    """Replace the leading ``old`` components of a section or figure number by ``new``."""
    if not number or tuple(number[: len(old)]) != old:
        return number
    renumbered = (*new, *number[len(old):])
    return renumbered if isinstance(number, tuple) else list(renumbered)


def renumber_sections(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """Number the editions' pages as sections of chapter ``dldna_chapter_number``.

    Runs after Sphinx's toctree collector has assigned fresh numbers in this build (it
    recomputes them every build) and rewrites them where Sphinx keeps them: the
    per-document numbers, the numbers on toctree entries and on document titles, and
    the chapter part of figure numbers.
    """
    chapter = app.config.dldna_chapter_number
    if not chapter:
        return []
    env.dldna_assigned_numbers = copy.deepcopy(  # type: ignore[attr-defined]
        (env.toc_secnumbers, env.toc_fignumbers)
    )
    for docname, secnums in env.toc_secnumbers.items():
        old = tuple(secnums.get("") or ())
        new = section_prefix(docname, old, chapter)
        if not old or new == old:
            continue
        for anchor, number in secnums.items():
            secnums[anchor] = _renumber(number, old, new)
        if docname in env.tocs:
            for reference in env.tocs[docname].findall(nodes.reference):
                if reference.get("secnumber"):
                    reference["secnumber"] = _renumber(reference["secnumber"], old, new)
        title = env.titles.get(docname)
        if title is not None and title.get("secnumber"):
            title["secnumber"] = _renumber(title["secnumber"], old, new)
        for figtype in env.toc_fignumbers.get(docname, {}).values():
            for figure_id, number in figtype.items():
                if len(number) > 1:  # (chapter, n): figures under a numbered section
                    figtype[figure_id] = _renumber(number, old[:1], new[:1])
    return []


def restore_assigned_numbers(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """Hand Sphinx back the numbers it assigned last build, before it numbers again.

    Sphinx rewrites every page whose numbers differ from last build's; comparing its fresh
    numbers with the renumbered ones would rewrite every numbered page on every build.
    """
    assigned = getattr(env, "dldna_assigned_numbers", None)
    if assigned is not None:
        env.toc_secnumbers, env.toc_fignumbers = copy.deepcopy(assigned)
    return []


def check_static_assets(app: Sphinx) -> None:
    """Warn when MathJax or mermaid is not vendored into an ``html_static_path`` folder."""
    if app.builder.format != "html":
        return
    confdir = Path(app.confdir)
    static_dirs = [confdir / path for path in app.config.html_static_path]
    wanted = {
        "mathjax_path": app.config.mathjax_path,
        "mermaid_use_local": getattr(app.config, "mermaid_use_local", ""),
    }
    for setting, path in wanted.items():
        if not path or "://" in path or path.startswith("/"):
            logger.warning(
                "%s = %r loads from the network; the book must render offline, point it at "
                "a file vendored by scripts/fetch_web_assets.py",
                setting,
                path,
                type="dldna",
                subtype="assets",
            )
            continue
        if not any((folder / path).is_file() for folder in static_dirs):
            logger.warning(
                "%s: %s is not in %s; run `python scripts/fetch_web_assets.py` "
                "(`make book` does) to vendor MathJax and mermaid",
                setting,
                path,
                ", ".join(str(folder) for folder in static_dirs),
                type="dldna",
                subtype="assets",
            )


def plain_copy_url(url: str, notebooks_dir: str, plain_dir: str) -> str:
    """``.../blob/main/notebooks/en/X.ipynb`` -> ``.../blob/main/colab/en/X.ipynb``."""
    head, found, tail = url.rpartition(f"/{notebooks_dir}/")
    return f"{head}/{plain_dir}/{tail}" if found else url


def _buttons(items: list[Any]):
    for item in items:
        yield item
        yield from _buttons(item.get("buttons", []))


def point_colab_at_plain_copies(app: Sphinx, pagename: str, templatename: str,
                                context: dict[str, Any], doctree: Any) -> None:
    """Make the page's Colab launch button open the plain-Markdown copy of its notebook.

    Runs after sphinx-book-theme added its buttons (``html-page-context``, priority 501).
    """
    plain_dir = app.config.dldna_plain_notebooks_dir
    if not plain_dir or not pagename.startswith(f"{app.config.dldna_notebooks_dir}/"):
        return
    for button in _buttons(context.get("header_buttons") or []):
        if button.get("text") == "Colab" and button.get("url"):
            button["url"] = plain_copy_url(button["url"], app.config.dldna_notebooks_dir, plain_dir)


def ship_plain_copies(app: Sphinx, exception: Exception | None) -> None:
    """Serve the plain copy as each notebook page's ``.ipynb`` download (``_sources``)."""
    plain_dir = app.config.dldna_plain_notebooks_dir
    if exception is not None or app.builder.format != "html" or not plain_dir:
        return
    sources = Path(app.outdir) / "_sources" / app.config.dldna_notebooks_dir
    for copy_file in sorted((Path(app.srcdir) / plain_dir).glob("*/*.ipynb")):
        target = sources / copy_file.parent.name / copy_file.name
        if target.is_file():
            shutil.copyfile(copy_file, target)


def use_inline_figures(app: Sphinx) -> None:
    """Make the notebook kernels this build starts render matplotlib figures inline."""
    previous = os.environ.get("MPLBACKEND")
    if previous and previous != INLINE_BACKEND:
        logger.info("[dldna] notebook kernels: MPLBACKEND=%s -> inline figures", previous)
    os.environ["MPLBACKEND"] = INLINE_BACKEND


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("dldna_notebooks_dir", "notebooks", "env")
    app.add_config_value("dldna_editions_dir", "book", "env")
    app.add_config_value("dldna_canonical_language", "en", "env")
    app.add_config_value("dldna_chapter_number", 1, "env")
    app.add_config_value("dldna_plain_notebooks_dir", "", "html")
    app.add_directive("dldna-editions", EditionsDirective)
    app.add_css_file("dldna.css")
    app.connect("builder-inited", use_inline_figures)
    app.connect("builder-inited", check_static_assets)
    app.connect("env-get-outdated", reread_edition_lists)
    app.connect("env-purge-doc", _purge_edition_list)
    app.connect("env-merge-info", _merge_edition_lists)
    app.connect("env-check-consistency", check_editions)
    # Around Sphinx's toctree collector (priority 500), which assigns the numbers.
    app.connect("env-get-updated", restore_assigned_numbers, priority=100)
    app.connect("env-get-updated", renumber_sections, priority=900)
    app.connect("html-page-context", add_page_context)
    app.connect("html-page-context", point_colab_at_plain_copies, priority=600)
    app.connect("build-finished", ship_plain_copies)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
