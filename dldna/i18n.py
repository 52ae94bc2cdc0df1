"""Translated editions of the notebooks: shared code, aligned markdown, recorded sources.

English (``notebooks/en``) is canonical. A translation ``notebooks/<lang>/<name>.ipynb``
has the English cells in the same order with the same ids: every code cell is a copy of
the English one (source, tags, metadata), every markdown cell is a translation of the
English cell with the same id and records what it translates in its metadata::

    "metadata": {"dldna": {"source_hash": "<sha256 of the English cell's source>"}}

A markdown cell that is not translated yet is a placeholder: the English source with
``"status": "untranslated"``, which the language check (tests/test_translations.py)
reports. When an English cell changes, its translation keeps the hash of the text it was
made from, so :func:`freshness` can list the cells whose English has moved on (stale), and
the book shows the reader a note about them (book/_ext/dldna_i18n.py).

The command line (``scripts/sync_translations.py``, or ``python -m dldna.i18n``):

* (default) sync: create or update every translation from English: copy the code
  cells, keep the translated markdown (matched by cell id, else by the English text it
  records), add placeholders for new English markdown cells, drop cells English no
  longer has. Deterministic and idempotent; writes the English notebooks' JSON format.
* ``--check``: list stale and untranslated cells; exit 1 on structural drift (a missing
  notebook, cells out of line with English, code that differs, a markdown cell that
  records no source).
* ``--mark-translated NOTEBOOK ...``: after translating, record the current English hash in the given cells
  (``--cells ID ...``), or in every placeholder whose text was replaced.

Standard library only: the Sphinx extension and the tests import it too.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CANONICAL = "en"
TRANSLATIONS = ("ko", "zh")
META = "dldna"  # the cell-metadata key this module owns
UNTRANSLATED = "untranslated"

# The note a page with out-of-date cells shows its reader, in the page's language.
# {stale}/{untranslated}: numbers of cells; the link to the English page follows the text.
STALE_NOTES = {
    "ko": "이 페이지는 {stale}곳에서 영어 원문의 이전 버전을 따르고 있습니다.",
    "zh": "本页有 {stale} 处译文依据的是英文原文的旧版本。",
}
UNTRANSLATED_NOTES = {
    "ko": "아직 번역되지 않은 {untranslated}곳은 영어 원문 그대로 실려 있습니다.",
    "zh": "尚未翻译的 {untranslated} 处暂以英文原文显示。",
}
# (before, link text, after): the link goes to the same page of the English edition.
ENGLISH_LINKS = {
    "ko": ("최신 내용은 ", "영어 페이지", "에서 확인하세요."),
    "zh": ("最新内容请参阅", "英文页面", "。"),
}


class TranslationError(ValueError):
    """A translation that cannot be synchronised or marked as asked."""


# ---------------------------------------------------------------------------------------
# Notebook files


def load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TranslationError(f"{path}: not a notebook (invalid JSON: {error})") from error


def dumps(notebook: dict[str, Any]) -> str:
    """The JSON text Jupyter (nbformat) writes, which the English notebooks use."""
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def write_if_changed(path: Path, notebook: dict[str, Any]) -> bool:
    text = dumps(notebook)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def as_lines(text: str) -> list[str]:
    """``text`` as nbformat stores it: a list of lines, each with its newline."""
    return text.splitlines(keepends=True)


def source_hash(cell: dict[str, Any]) -> str:
    return hashlib.sha256(source(cell).encode("utf-8")).hexdigest()


def record(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get(META, {})


# ---------------------------------------------------------------------------------------
# Cell states


def placeholder(english_cell: dict[str, Any]) -> dict[str, Any]:
    """An untranslated stand-in for ``english_cell``: its text, marked as untranslated."""
    cell = copy.deepcopy(english_cell)
    cell.setdefault("metadata", {})[META] = {
        "source_hash": source_hash(english_cell), "status": UNTRANSLATED}
    return cell


def is_untouched_placeholder(cell: dict[str, Any]) -> bool:
    """A placeholder whose text is still the English it was made from."""
    meta = record(cell)
    return meta.get("status") == UNTRANSLATED and meta.get("source_hash") == source_hash(cell)


def state(english_cell: dict[str, Any], cell: dict[str, Any]) -> str:
    """``current``, ``stale`` (English changed since), ``untranslated`` or ``unrecorded``."""
    meta = record(cell)
    if meta.get("status") == UNTRANSLATED:
        return UNTRANSLATED
    if "source_hash" not in meta:
        return "unrecorded"
    return "current" if meta["source_hash"] == source_hash(english_cell) else "stale"


@dataclass
class Freshness:
    """The markdown cells of one translation that do not follow the current English."""

    stale: list[str] = field(default_factory=list)  # cell ids
    untranslated: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)


def freshness(english: dict[str, Any], translation: dict[str, Any]) -> Freshness:
    """Compare each markdown cell of ``translation`` with the English cell of the same id."""
    result = Freshness()
    by_id = {cell.get("id"): cell for cell in english["cells"]}
    for cell in translation["cells"]:
        english_cell = by_id.get(cell.get("id"))
        if cell.get("cell_type") != "markdown" or english_cell is None:
            continue
        kind = state(english_cell, cell)
        if kind != "current":
            getattr(result, kind).append(cell.get("id"))
    return result


def structural_drift(english: dict[str, Any], translation: dict[str, Any]) -> list[str]:
    """Why ``translation`` is not English's cells in English's order, with English's code."""
    problems = []
    en_cells, cells = english["cells"], translation["cells"]
    layout = [(c.get("cell_type"), c.get("id")) for c in en_cells]
    found = [(c.get("cell_type"), c.get("id")) for c in cells]
    if layout != found:
        missing = [i for t, i in layout if (t, i) not in found]
        extra = [i for t, i in found if (t, i) not in layout]
        problems.append(
            f"cells do not line up with English ({len(found)} cells, English has "
            f"{len(layout)}; missing {missing[:5]}, not in English {extra[:5]})")
        return problems
    for en_cell, cell in zip(en_cells, cells):
        if cell["cell_type"] == "code" and cell != en_cell:
            problems.append(f"code cell {cell.get('id')} differs from English")
        if cell["cell_type"] == "markdown" and state(en_cell, cell) == "unrecorded":
            problems.append(
                f"markdown cell {cell.get('id')} records no English source "
                "(run `sync_translations.py --mark-translated` after translating it)")
    if translation.get("metadata") != english.get("metadata"):
        problems.append("notebook metadata (kernelspec) differs from English")
    return problems


# ---------------------------------------------------------------------------------------
# Synchronising and marking


@dataclass
class SyncReport:
    kept: int = 0
    placeholders: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)  # untouched placeholders re-copied
    dropped: list[str] = field(default_factory=list)  # translated cells English no longer has


def synchronise(english: dict[str, Any],
                translation: dict[str, Any] | None) -> tuple[dict[str, Any], SyncReport]:
    """The translation rebuilt on English's cells: code copied, markdown kept or stubbed."""
    report = SyncReport()
    old = [c for c in (translation or {}).get("cells", []) if c.get("cell_type") == "markdown"]
    by_id = {cell.get("id"): cell for cell in old}
    by_hash = {record(cell).get("source_hash"): cell for cell in old
               if record(cell).get("status") != UNTRANSLATED}
    used: set[int] = set()
    cells = []
    for en_cell in english["cells"]:
        if en_cell.get("cell_type") != "markdown":
            cells.append(copy.deepcopy(en_cell))
            continue
        match = by_id.get(en_cell.get("id"))
        if match is None or id(match) in used:
            match = by_hash.get(source_hash(en_cell))
        if match is None or id(match) in used:
            cells.append(placeholder(en_cell))
            report.placeholders.append(en_cell.get("id"))
            continue
        used.add(id(match))
        if is_untouched_placeholder(match):
            cells.append(placeholder(en_cell))
            if record(match).get("source_hash") != source_hash(en_cell):
                report.refreshed.append(en_cell.get("id"))
            continue
        cell = copy.deepcopy(en_cell)
        cell["source"] = copy.deepcopy(match.get("source", []))
        if "attachments" in match:
            cell["attachments"] = copy.deepcopy(match["attachments"])
        meta = record(match)
        if meta:
            cell["metadata"][META] = copy.deepcopy(meta)
        cells.append(cell)
        report.kept += 1
    report.dropped = [c.get("id") for c in old
                      if id(c) not in used and not is_untouched_placeholder(c)]
    notebook = {key: copy.deepcopy(value) for key, value in english.items() if key != "cells"}
    notebook["cells"] = cells
    return notebook, report


def mark_translated(english: dict[str, Any], translation: dict[str, Any],
                    cell_ids: list[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Record the current English text as the source of translated markdown cells.

    With ``cell_ids``, exactly those cells (an id that is not a markdown cell of both
    notebooks is an error); without, every placeholder whose text was replaced.
    """
    result = copy.deepcopy(translation)
    en_by_id = {c.get("id"): c for c in english["cells"] if c.get("cell_type") == "markdown"}
    cells = {c.get("id"): c for c in result["cells"] if c.get("cell_type") == "markdown"}
    if cell_ids is None:
        chosen = [i for i, c in cells.items() if i in en_by_id
                  and record(c).get("status") == UNTRANSLATED and not is_untouched_placeholder(c)]
    else:
        unknown = [i for i in cell_ids if i not in cells or i not in en_by_id]
        if unknown:
            raise TranslationError(
                f"--cells {unknown}: not markdown cells of both notebooks; markdown cell ids "
                f"are {sorted(cells)}")
        chosen = list(cell_ids)
    for cell_id in chosen:
        cell = cells[cell_id]
        if source(cell) == source(en_by_id[cell_id]):
            raise TranslationError(
                f"cell {cell_id}: its text is still the English text; translate it first")
        cell.setdefault("metadata", {})[META] = {"source_hash": source_hash(en_by_id[cell_id])}
    return result, chosen


# ---------------------------------------------------------------------------------------
# The language check: what a translated markdown cell must and must not contain

HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
SCRIPTS = {"ko": HANGUL, "zh": HAN}
FORBIDDEN = {"ko": [("kana", KANA)], "zh": [("Hangul", HANGUL), ("kana", KANA)]}
# Frequent characters that exist only in Traditional Chinese: the edition is Simplified.
TRADITIONAL = re.compile("[這們個為與對於說將學習體經過點關係資訊圖樣應該實現時間數據層網絡塊類開發進術語題頁後從還麼訓練義輸損態]")
LEAKED = re.compile(
    r"严格指令|嚴格指令|翻译要求|请翻译|以下是翻译|strict instructions?|translation instructions?|"
    r"translate the following|as an ai\b|번역 지침|다음을 번역|번역해 주세요|지시 사항",
    re.IGNORECASE)

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,}|:{3,})(.*)$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?(?=\s|$)")
ROLE = re.compile(r"\{([a-z][\w:-]*)\}`([^`]*)`")
DIRECTIVE = re.compile(r"^\s*(?:`{3,}|~{3,}|:{3,})\{([\w:-]+)\}")
LABEL = re.compile(r"^\s*\(([\w:-]+)\)=\s*$", re.M)
MATH_BLOCK = re.compile(r"\$\$.*?\$\$", re.S)
MATH_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# Latin text a translated paragraph may keep: quoted titles, the English term in
# parentheses after its translation, italic titles, link targets, HTML, URLs.
QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|‘[^’\n]*’|«[^»\n]*»|《[^》\n]*》|「[^」\n]*」|『[^』\n]*』")
PARENTHESES = re.compile(r"\([^()\n]*\)|（[^（）\n]*）")
EMPHASIS = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)\*(?!\*)|(?<!\w)_(?!\s)([^_\n]+?)_(?!\w)")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)|<https?://[^>]*>|https?://\S+|<[^>\n]+>")
ENGLISH_WORD = re.compile(r"^[a-z][a-z'’-]*[a-z]$|^(a|i)$")
ENGLISH_RUN = 5  # this many lowercase English words in a row are a sentence left in English


def split_blocks(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` blocks of a markdown cell: ``code``, ``math``, ``heading``, ``prose``.

    Code fences are code; ``$$`` blocks and ``{math}`` fences are math; MyST directive fences
    (``:::{dropdown} ...``, ```` ```{note} ````) are syntax, their body is prose; blank lines,
    list items and table rows separate prose paragraphs.
    """
    blocks: list[tuple[str, str]] = []
    paragraph: list[str] = []
    fence: tuple[str, str] | None = None  # (marker, kind)
    body: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(("prose", "\n".join(paragraph)))
            paragraph.clear()

    lines = MATH_BLOCK.sub(lambda m: "\n" * m.group(0).count("\n") + "\x00MATH\x00", text).split("\n")
    for line in lines:
        match = FENCE.match(line)
        if fence is not None:
            if match and match.group(2)[0] == fence[0][0] and len(match.group(2)) >= len(fence[0]) \
                    and not match.group(3).strip():
                blocks.append((fence[1], "\n".join(body)))
                fence, body = None, []
            else:
                body.append(line)
            continue
        if match:
            flush()
            name = DIRECTIVE.match(line)
            if name and name.group(1) not in ("code", "code-block", "code-cell", "math", "mermaid"):
                continue  # a directive that holds prose: its body is read line by line
            if match.group(2).startswith(":") and not name:
                continue  # the closing ::: of a prose directive
            kind = "math" if name and name.group(1) == "math" else "code"
            fence = (match.group(2), kind)
            continue
        if not line.strip() or "\x00MATH\x00" in line:
            flush()
            if "\x00MATH\x00" in line:
                blocks.append(("math", line))
            continue
        if HEADING.match(line):
            flush()
            blocks.append(("heading", line))
            continue
        if re.match(r"^\s*([-*+]|\d+[.)]|\|)\s", line) or re.match(r"^\s*:?-{3,}", line):
            flush()
        if re.match(r"^\s*:[\w-]+:", line):
            continue  # a directive option (:class: ...)
        paragraph.append(line)
    flush()
    return blocks


def prose_only(text: str) -> str:
    """``text`` without the parts that may stay Latin: math, code, roles, links, titles."""
    text = MATH_INLINE.sub(" ", text)
    text = ROLE.sub(" ", text)
    text = CODE_SPAN.sub(" ", text)
    text = LINK_TARGET.sub(" ", text)
    text = QUOTED.sub(" ", text)
    for _ in range(2):
        text = PARENTHESES.sub(" ", text)
    text = EMPHASIS.sub(" ", text)
    return text


def english_run(text: str) -> list[str]:
    """The longest run of consecutive lowercase English words in ``text``."""
    best: list[str] = []
    run: list[str] = []
    for token in re.split(r"\s+", text):
        word = token.strip(".,;:!?*()[]{}\"'“”‘’…—–-|")
        if word and ENGLISH_WORD.match(word) and not re.search(r"[^\x00-\x7f’]", word):
            run.append(word)
            if len(run) > len(best):
                best = list(run)
        elif word:
            run = []
    return best


def headings(text: str) -> list[tuple[int, str, str]]:
    """``(level, section number or "", text)`` of the headings outside code."""
    found = []
    for kind, block in split_blocks(text):
        if kind == "heading":
            match = HEADING.match(block)
            title = match.group(2)
            number = SECTION_NUMBER.match(title)
            found.append((len(match.group(1)), number.group(1) if number else "", title))
    return found


def syntax(text: str) -> dict[str, list[str]]:
    """What must survive translation unchanged: roles, cite keys, directives, labels, math, code."""
    cites = sorted(key.strip() for name, keys in ROLE.findall(text) if name.startswith("cite")
                   for key in keys.split(","))
    return {
        "roles": sorted(name for name, _ in ROLE.findall(text)),
        "cite keys": cites,
        "directives": [m.group(1) for line in text.split("\n") if (m := DIRECTIVE.match(line))],
        # every line that opens or closes a directive or a code block, in order
        "fences": [m.group(2) for line in text.split("\n") if (m := FENCE.match(line))],
        "labels": sorted(LABEL.findall(text)),
        "math": sorted(m.strip() for m in MATH_BLOCK.findall(text) + MATH_INLINE.findall(text)),
    }


def cell_problems(lang: str, english_text: str, text: str) -> list[str]:
    """What the language check finds wrong in one translated markdown cell."""
    problems = []
    if LEAKED.search(text):
        problems.append(f"leaked translator instruction: {LEAKED.search(text).group(0)!r}")
    en_heads = [(level, number) for level, number, _ in headings(english_text)]
    heads = [(level, number) for level, number, _ in headings(text)]
    if heads != en_heads:
        problems.append(f"headings {heads} do not match English {en_heads} (levels, numbers)")
    en_syntax, found = syntax(english_text), syntax(text)
    for what in en_syntax:
        if en_syntax[what] != found[what]:
            problems.append(f"{what} differ from English: {found[what]} != {en_syntax[what]}")
    own = SCRIPTS[lang]
    for kind, block in split_blocks(text):
        if kind in ("code", "math"):
            continue
        for name, pattern in FORBIDDEN[lang]:
            if pattern.search(block):
                problems.append(f"{name} in the {lang} text: {block.strip()[:60]!r}")
        if lang == "zh" and TRADITIONAL.search(block):
            problems.append(f"Traditional characters {sorted(set(TRADITIONAL.findall(block)))}"
                            f" in Simplified Chinese: {block.strip()[:60]!r}")
        prose = prose_only(block)
        run = english_run(prose)
        if not own.search(prose) and len(run) >= 3 or len(run) >= ENGLISH_RUN:
            problems.append(f"left in English: {' '.join(run)!r} in {block.strip()[:60]!r}")
    return problems


# ---------------------------------------------------------------------------------------
# Glossaries: book/<lang>/glossary.md, a Markdown table


@dataclass(frozen=True)
class Term:
    english: str
    preferred: tuple[str, ...]  # the glossary's term first, accepted variants after it
    avoid: tuple[str, ...]

    def used_in(self, english_text: str) -> bool:
        pattern = r"(?<![\w-])" + re.escape(self.english) + r"(s|es)?(?![\w])"
        return re.search(pattern, english_text, re.IGNORECASE) is not None


def load_glossary(path: Path) -> list[Term]:
    """The terms of a glossary page: rows ``| English | term / variant | avoid | note |``."""
    terms = []
    rows = [line for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.startswith("|")]
    for line in rows[2:]:  # header and separator first
        columns = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(columns) < 3:
            raise TranslationError(f"{path}: glossary row {line!r} needs 3 or more columns")
        english = re.sub(r"\*|`", "", columns[0]).strip()
        split = lambda cell: tuple(v.strip() for v in cell.split("/") if v.strip() and v.strip() != "—")
        terms.append(Term(english, split(columns[1]), split(columns[2])))
    if not terms:
        raise TranslationError(f"{path}: no glossary table rows")
    return terms


def glossary_problems(terms: list[Term], english_text: str, text: str) -> list[str]:
    """Page-level: a glossary term English uses must appear in its glossary form, never an avoided one."""
    problems = []
    english_prose, prose = prose_only(english_text), prose_only(text)
    for term in terms:
        if term.used_in(english_prose) and not any(v in text for v in term.preferred):
            problems.append(f"{term.english!r}: the glossary's {term.preferred[0]!r} is not used")
        for avoided in term.avoid:
            if avoided in prose:
                problems.append(f"{term.english!r}: {avoided!r} is avoided, use {term.preferred[0]!r}")
    return problems


# ---------------------------------------------------------------------------------------
# Command line


def _pairs(root: Path, languages: list[str]):
    for english_path in sorted((root / CANONICAL).glob("*.ipynb")):
        for lang in languages:
            yield lang, english_path, root / lang / english_path.name


def run_sync(root: Path, languages: list[str]) -> int:
    for lang, english_path, path in _pairs(root, languages):
        translation = load(path) if path.is_file() else None
        notebook, report = synchronise(load(english_path), translation)
        changed = write_if_changed(path, notebook)
        if changed or report.dropped:
            logger.info("%s: %s (%d translated, %d placeholder(s) added %s, %d refreshed, "
                        "dropped %s)", path, "written" if changed else "unchanged", report.kept,
                        len(report.placeholders), report.placeholders[:5], len(report.refreshed),
                        report.dropped)
    return 0


def run_check(root: Path, languages: list[str]) -> int:
    drift = 0
    for lang, english_path, path in _pairs(root, languages):
        if not path.is_file():
            logger.error("%s: missing (run scripts/sync_translations.py)", path)
            drift += 1
            continue
        english, translation = load(english_path), load(path)
        problems = structural_drift(english, translation)
        for problem in problems:
            logger.error("%s: %s", path, problem)
        drift += len(problems)
        if not problems:
            fresh = freshness(english, translation)
            if fresh.stale:
                logger.warning("%s: %d stale cell(s), English changed since: %s", path,
                               len(fresh.stale), fresh.stale)
            if fresh.untranslated:
                logger.warning("%s: %d untranslated cell(s): %s", path,
                               len(fresh.untranslated), fresh.untranslated)
    return 1 if drift else 0


def run_mark(root: Path, paths: list[Path], cell_ids: list[str] | None) -> int:
    for path in paths:
        english_path = root / CANONICAL / path.name
        if not english_path.is_file() or path.parent.name in (CANONICAL, ""):
            raise TranslationError(f"{path}: not a translation of a notebook in {root / CANONICAL}")
        notebook, marked = mark_translated(load(english_path), load(path), cell_ids)
        write_if_changed(path, notebook)
        logger.info("%s: marked %d cell(s) as translated from the current English: %s",
                    path, len(marked), marked)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("notebooks"),
                        help="folder holding en/ and the translations (default: notebooks)")
    parser.add_argument("--languages", nargs="+", default=list(TRANSLATIONS))
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true",
                        help="list stale and untranslated cells; exit 1 on structural drift")
    action.add_argument("--mark-translated", nargs="+", type=Path, metavar="NOTEBOOK",
                        help="record the current English text as the source of translated "
                             "cells of these notebooks, e.g. notebooks/ko/10_04_x.ipynb")
    parser.add_argument("--cells", nargs="+", default=None, metavar="ID",
                        help="with --mark-translated: these cell ids (default: every "
                             "placeholder whose text was replaced)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not (args.root / CANONICAL).is_dir():
        parser.error(f"--root {args.root}: no {CANONICAL}/ folder with the English notebooks")
    if args.cells and not args.mark_translated:
        parser.error("--cells goes with --mark-translated")
    try:
        if args.check:
            return run_check(args.root, args.languages)
        if args.mark_translated:
            return run_mark(args.root, args.mark_translated, args.cells)
        return run_sync(args.root, args.languages)
    except TranslationError as error:
        logger.error("%s", error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
