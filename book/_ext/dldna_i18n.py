"""Sphinx extension for the translated editions: freshness notes and CJK search.

* **Freshness note.** A translated notebook (``notebooks/<lang>/X.ipynb``, lang not
  English) records in each markdown cell the hash of the English cell it translates
  (``dldna/i18n.py``). When the English has changed since, or a cell is still an
  untranslated placeholder, the page shows its reader a short note in the page's language
  under the title, with a link to the English page. The note is a node added while the
  page is read, never a notebook cell, so the translations keep exactly the English code
  cells (and the execution cache key). The English notebook is a dependency of the page:
  editing it re-reads the translation in an incremental build.
* **Search in Korean and Chinese.** Sphinx's default (English) splitter cuts words at
  spaces and punctuation: a Chinese sentence becomes one "word", and its search matches
  a query only as a substring of three or more characters (searchtools.js's partial
  match), so a two-character word such as 嵌入 finds nothing; Korean words with a
  particle attached (임베딩은) are found only by that substring rule too. The search
  language registered here keeps English as it is (stemming, stop words) and indexes runs
  of Han, kana and Hangul as overlapping character bigrams; the query is split the same
  way in the browser, and Sphinx requires all of a query's terms, so a query matches a
  page that has its characters in that order. One splitter serves the whole site, whose
  pages are in three languages (``html_search_language`` is one per project, and
  Sphinx's ``zh`` splitter needs jieba and knows no Korean).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.search.en import SearchEnglish
from sphinx.util import logging

from dldna import i18n

logger = logging.getLogger(__name__)

# Han (with extension A), kana and Hangul syllables: scripts written without spaces
# between words, or (Hangul) with particles attached to the word.
CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
CJK_RUN = re.compile(f"[{CJK_CLASS}]+|[^{CJK_CLASS}]+")
CJK = re.compile(f"[{CJK_CLASS}]")

ENGLISH_NOTE = ("This page follows an earlier version of the English text in {stale} "
                "place(s).", "{untranslated} place(s) are not translated yet.",
                ("See the ", "English page", " for the current text."))


def cjk_terms(text: str) -> list[str]:
    """A run of CJK characters as its overlapping bigrams (one character: itself)."""
    if len(text) < 2:
        return [text]
    return [text[i:i + 2] for i in range(len(text) - 1)]


class SearchWithCJK(SearchEnglish):
    """English search, with Han, kana and Hangul indexed as character bigrams."""

    lang = "en"
    language_name = "English (with Korean and Chinese)"
    js_splitter_code = r"""
function splitQuery(query) {
  const cjk = /[%(cjk)s]/u;
  const terms = [];
  for (const word of query.split(/[^\p{Letter}\p{Number}_\p{Emoji_Presentation}]+/gu)) {
    for (const run of word.match(/[%(cjk)s]+|[^%(cjk)s]+/gu) || []) {
      if (!cjk.test(run)) terms.push(run);
      else if (run.length < 2) terms.push(run);
      else for (let i = 0; i + 1 < run.length; i++) terms.push(run.slice(i, i + 2));
    }
  }
  return terms.filter((term) => term);
}
""" % {"cjk": CJK_CLASS}

    def split(self, input: str) -> list[str]:  # noqa: A002 - Sphinx's signature
        terms = []
        for word in super().split(input):
            if not CJK.search(word):
                terms.append(word)
                continue
            for run in CJK_RUN.findall(word):
                terms += cjk_terms(run) if CJK.match(run) else [run]
        return terms


# ---------------------------------------------------------------------------------------
# Freshness notes


def translation_of(app: Sphinx, docname: str) -> tuple[str, Path, Path] | None:
    """``(lang, translation, English notebook)`` for a translated notebook page."""
    parts = docname.split("/")
    canonical = app.config.dldna_canonical_language
    if len(parts) != 3 or parts[0] != app.config.dldna_notebooks_dir or parts[1] == canonical:
        return None
    folder = Path(app.srcdir) / parts[0]
    translated = folder / parts[1] / f"{parts[2]}.ipynb"
    english = folder / canonical / f"{parts[2]}.ipynb"
    if not (translated.is_file() and english.is_file()):
        return None
    return parts[1], translated, english


def note_text(lang: str, stale: int, untranslated: int) -> tuple[str, tuple[str, str, str]]:
    """The note's sentences and its link (before, link text, after) in ``lang``."""
    stale_text = i18n.STALE_NOTES.get(lang, ENGLISH_NOTE[0])
    missing_text = i18n.UNTRANSLATED_NOTES.get(lang, ENGLISH_NOTE[1])
    sentences = []
    if stale:
        sentences.append(stale_text.format(stale=stale))
    if untranslated:
        sentences.append(missing_text.format(untranslated=untranslated))
    link = i18n.ENGLISH_LINKS.get(lang, ENGLISH_NOTE[2])
    separator = "" if lang in ("zh", "ja") else " "
    return separator.join(sentences), link


def add_freshness_note(app: Sphinx, doctree: nodes.document) -> None:
    """Put the note under the title of a translated page whose English has moved on."""
    docname = app.env.docname
    found = translation_of(app, docname)
    if found is None:
        return
    lang, translated, english = found
    app.env.note_dependency(str(english))
    fresh = i18n.freshness(i18n.load(english), i18n.load(translated))
    if not (fresh.stale or fresh.untranslated):
        return
    text, (before, label, after) = note_text(lang, len(fresh.stale), len(fresh.untranslated))
    target = f"/{app.config.dldna_notebooks_dir}/{app.config.dldna_canonical_language}/" \
             f"{docname.rsplit('/', 1)[1]}"
    reference = addnodes.pending_xref(
        "", nodes.inline(text=label), refdomain="std", reftype="doc", reftarget=target,
        refexplicit=True, refwarn=True, refdoc=docname)
    separator = "" if lang in ("zh", "ja") else " "
    paragraph = nodes.paragraph("", text + separator + before, reference, nodes.Text(after))
    note = nodes.container("", paragraph, classes=["dldna-freshness-note"],
                           stale=len(fresh.stale), untranslated=len(fresh.untranslated))
    section = doctree.next_node(nodes.section)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, note)
    else:
        doctree.insert(0, note)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_search_language(SearchWithCJK)
    app.connect("doctree-read", add_freshness_note)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
