"""The Korean and Chinese editions: shared code, aligned cells, fresh and native prose.

Three groups of tests:

* the language check over the committed translations (every notebook in every language,
  markdown cells aligned with English, headings with the same levels and numbers, each
  paragraph in its own script, no leaked translator instructions, MyST syntax and
  ``{cite}`` keys kept, the glossary's terms used). While ``notebooks/<lang>/`` does not
  exist these are skipped with that reason, never passed;
* scratch copies (``tmp_path``) that exercise ``scripts/sync_translations.py``
  (dldna/i18n.py): code copied, placeholders for new cells, idempotent writes in the
  English JSON format, the parity test of tests/test_notebooks.py passing on a scratch
  translation and failing when its code differs, and the staleness check and the page
  note reacting when an English cell changes;
* the heuristics themselves, on short texts that must pass and must fail, and the
  Korean/Chinese search splitter (book/_ext/dldna_i18n.py), in Python and in the
  browser's JavaScript.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from dldna import i18n

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ENGLISH = sorted((NOTEBOOKS / "en").glob("*.ipynb"))
GLOSSARIES = {lang: ROOT / "book" / lang / "glossary.md" for lang in i18n.TRANSLATIONS}


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _translated() -> list[tuple[str, Path]]:
    return [(lang, NOTEBOOKS / lang / p.name) for lang in i18n.TRANSLATIONS for p in ENGLISH]


def _needs(lang: str, path: Path | None = None) -> None:
    if not (NOTEBOOKS / lang).is_dir():
        pytest.skip(f"notebooks/{lang}/ is not translated yet (issue 12: "
                    "`python scripts/sync_translations.py`, then translate)")


# ---------------------------------------------------------------------------------------
# The language check over the committed translations


@pytest.mark.parametrize("lang", i18n.TRANSLATIONS)
def test_every_notebook_exists_in_every_language(lang):
    _needs(lang)
    assert sorted(p.name for p in (NOTEBOOKS / lang).glob("*.ipynb")) == [p.name for p in ENGLISH]


@pytest.mark.parametrize(("lang", "path"), _translated(), ids=[f"{l}/{p.name}" for l, p in _translated()])
def test_translation_lines_up_and_records_its_sources(lang, path):
    _needs(lang)
    english, translation = i18n.load(NOTEBOOKS / "en" / path.name), i18n.load(path)
    assert not i18n.structural_drift(english, translation), i18n.structural_drift(english, translation)
    fresh = i18n.freshness(english, translation)
    assert not fresh.untranslated, f"{path}: untranslated cells {fresh.untranslated}"
    assert path.read_text(encoding="utf-8") == i18n.dumps(translation), (
        f"{path}: not in the notebooks' JSON format (run scripts/sync_translations.py)")


@pytest.mark.parametrize(("lang", "path"), _translated(), ids=[f"{l}/{p.name}" for l, p in _translated()])
def test_language_check(lang, path):
    _needs(lang)
    english = {c["id"]: c for c in i18n.load(NOTEBOOKS / "en" / path.name)["cells"]}
    translation = i18n.load(path)
    problems = []
    for cell in translation["cells"]:
        if cell["cell_type"] == "markdown" and cell["id"] in english:
            problems += [f"{cell['id']}: {p}" for p in
                         i18n.cell_problems(lang, i18n.source(english[cell["id"]]), i18n.source(cell))]
    markdown = lambda nb: "\n".join(i18n.source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    problems += i18n.glossary_problems(
        i18n.load_glossary(GLOSSARIES[lang]), markdown({"cells": list(english.values())}),
        markdown(translation))
    assert not problems, f"{path}:\n  " + "\n  ".join(problems)


def _toc_sections() -> dict[str, list[str]]:
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return {m.group(1): [s["file"] for s in chapter.get("sections", [])]
            for part in toc["parts"] for chapter in part["chapters"]
            if (m := re.fullmatch(r"book/([^/]+)/index", chapter["file"]))}


@pytest.mark.parametrize("lang", i18n.TRANSLATIONS)
def test_each_edition_has_a_part_index_page_and_glossary(lang):
    sections = _toc_sections()
    assert lang in sections, f"_toc.yml has no part whose chapter is book/{lang}/index"
    index = (ROOT / "book" / lang / "index.md").read_text(encoding="utf-8")
    assert i18n.SCRIPTS[lang].search(index.splitlines()[0]), "the index title is translated"
    listed = bool(sections[lang])
    assert listed == (NOTEBOOKS / lang).is_dir(), (
        f"list notebooks/{lang}/* under book/{lang}/index in _toc.yml exactly when they exist")
    assert ("{tableofcontents}" in index) == listed, (
        f"book/{lang}/index.md: a tableofcontents directive goes with the part's sections")
    assert (ROOT / "book" / lang / "glossary.md").is_file()
    prose = [b for kind, b in i18n.split_blocks(index) if kind == "prose"]
    script = ("left in English", "Hangul", "kana", "Traditional", "leaked")
    problems = [p for b in prose for p in i18n.cell_problems(lang, "", b) if p.startswith(script)]
    assert not problems, problems


# ---------------------------------------------------------------------------------------
# Glossaries

REQUIRED_TERMS = {
    "multimodal", "cross-attention", "contrastive learning", "embedding", "zero-shot",
    "fine-tuning", "Recall@K", "temperature", "ablation study", "patch", "token", "encoder",
    "decoder", "VQA", "image captioning", "early fusion", "late fusion", "gated fusion",
    "latent array", "ViT", "CLIP", "InfoNCE", "hard negative", "errata",
}


@pytest.mark.parametrize("lang", i18n.TRANSLATIONS)
def test_glossary_has_the_chapters_terms_in_its_own_script(lang):
    terms = i18n.load_glossary(GLOSSARIES[lang])
    english = [t.english for t in terms]
    assert len(english) == len(set(english)), "a term is listed twice"
    assert REQUIRED_TERMS <= set(english), REQUIRED_TERMS - set(english)
    for term in terms:
        assert term.preferred, term
        assert not set(term.preferred) & set(term.avoid), term
        for problem in i18n.cell_problems(lang, "x", " ".join(term.preferred + term.avoid)):
            assert "left in English" in problem, (term, problem)  # names stay Latin
    page = GLOSSARIES[lang].read_text(encoding="utf-8")
    assert i18n.SCRIPTS[lang].search(page.split("|")[0]), "the page's introduction is translated"


def test_glossaries_list_the_same_english_terms():
    ko, zh = (sorted(t.english for t in i18n.load_glossary(GLOSSARIES[lang])) for lang in ("ko", "zh"))
    assert ko == zh


def test_glossary_check_wants_the_preferred_term_and_refuses_the_avoided_one():
    terms = [i18n.Term("contrastive learning", ("대조 학습",), ("대비 학습",))]
    english = "We train with contrastive learning."
    assert not i18n.glossary_problems(terms, english, "대조 학습(contrastive learning)으로 훈련합니다.")
    assert i18n.glossary_problems(terms, english, "대비 학습으로 훈련합니다.") == [
        "'contrastive learning': the glossary's '대조 학습' is not used",
        "'contrastive learning': '대비 학습' is avoided, use '대조 학습'"]
    assert not i18n.glossary_problems(terms, "No such term here.", "대비 없음")


# ---------------------------------------------------------------------------------------
# The heuristics

KO_GOOD = """## 10.4.2 대조 손실

대조 학습(contrastive learning)은 짝이 맞는 이미지와 캡션을 가깝게, 나머지를 멀게 만듭니다.
온도 $\\tau$로 나눈 유사도 $s_{ij} = \\mathbf{u}_i^\\top \\mathbf{v}_j / \\tau$에 소프트맥스를
적용하며, `contrastive_loss`가 이를 계산합니다 {cite}`radford2021clip`. 원 논문
*Learning Transferable Visual Models From Natural Language Supervision*을 참고하세요.

```python
loss = contrastive_loss(image_emb, text_emb, temperature=0.07)
```

:::{dropdown} 풀이
InfoNCE는 CLIP과 같은 손실입니다.
:::
"""
EN_GOOD = """## 10.4.2 The contrastive loss

Contrastive learning pulls matching images and captions together and pushes the rest apart.
A softmax over the similarities $s_{ij} = \\mathbf{u}_i^\\top \\mathbf{v}_j / \\tau$ divided by
the temperature $\\tau$, computed by `contrastive_loss` {cite}`radford2021clip`. See the paper
*Learning Transferable Visual Models From Natural Language Supervision*.

```python
loss = contrastive_loss(image_emb, text_emb, temperature=0.07)
```

:::{dropdown} Solution
InfoNCE is CLIP's loss.
:::
"""
ZH_GOOD = """## 10.4.2 对比损失

对比学习（contrastive learning）让匹配的图像与描述彼此靠近，其余的相互远离。相似度
$s_{ij} = \\mathbf{u}_i^\\top \\mathbf{v}_j / \\tau$ 除以温度 $\\tau$ 后做 softmax，由
`contrastive_loss` 计算 {cite}`radford2021clip`。参见论文
*Learning Transferable Visual Models From Natural Language Supervision*。

```python
loss = contrastive_loss(image_emb, text_emb, temperature=0.07)
```

:::{dropdown} 解答
InfoNCE 就是 CLIP 的损失。
:::
"""


@pytest.mark.parametrize(("lang", "text"), [("ko", KO_GOOD), ("zh", ZH_GOOD)])
def test_a_native_paragraph_with_terms_math_code_and_titles_passes(lang, text):
    assert i18n.cell_problems(lang, EN_GOOD, text) == []


@pytest.mark.parametrize(
    ("lang", "change", "found"),
    [
        ("ko", lambda t: t + "\nThe rest of this section is left as it was in English.\n",
         "left in English"),
        ("ko", lambda t: t.replace("만듭니다.", "만듭니다. We then train the model for five epochs."),
         "left in English"),
        ("ko", lambda t: t.replace("온도", "温度 テンプ"), "kana"),
        ("zh", lambda t: t.replace("相似度", "유사도"), "Hangul"),
        ("zh", lambda t: t.replace("对比学习", "對比學習"), "Traditional"),
        ("zh", lambda t: t.replace("对比损失\n", "对比损失\n\n严格指令：只输出译文。\n"), "leaked"),
        ("ko", lambda t: t + "\nStrict instructions: keep the formatting.\n", "leaked"),
        ("ko", lambda t: t.replace("## 10.4.2", "### 10.4.2"), "headings"),
        ("zh", lambda t: t.replace("## 10.4.2", "## 10.4.3"), "headings"),
        ("zh", lambda t: t.replace("radford2021clip", "radford2021"), "cite keys"),
        ("ko", lambda t: t.replace(":::{dropdown}", ":::{admonition}"), "directives"),
        ("ko", lambda t: t.rstrip().removesuffix(":::"), "fences"),  # a directive left open
        ("zh", lambda t: t.replace("\\tau$ 除以", "\\tau $ 除以"), "math"),
    ],
)
def test_the_language_check_finds(lang, change, found):
    text = change(KO_GOOD if lang == "ko" else ZH_GOOD)
    problems = i18n.cell_problems(lang, EN_GOOD, text)
    assert any(found in p for p in problems), problems


def test_an_untranslated_placeholder_is_english_to_the_check():
    assert any("left in English" in p for p in i18n.cell_problems("ko", EN_GOOD, EN_GOOD))
    assert any("left in English" in p for p in i18n.cell_problems("zh", EN_GOOD, EN_GOOD))


def test_english_paragraphs_of_every_notebook_are_caught():
    """Every English notebook, read as if it were Korean: most prose cells are flagged."""
    flagged = total = 0
    for path in ENGLISH:
        for cell in i18n.load(path)["cells"]:
            if cell["cell_type"] == "markdown" and len(i18n.source(cell)) > 200:
                total += 1
                text = i18n.source(cell)
                flagged += any("left in English" in p for p in i18n.cell_problems("ko", text, text))
    assert total and flagged == total, f"{total - flagged} of {total} English cells not flagged"


# ---------------------------------------------------------------------------------------
# Scratch copies: sync, parity, freshness

TWO = ("10_04_multimodal_embedding.ipynb", "10_10_exercises.ipynb")


def _scratch(tmp_path: Path) -> Path:
    root = tmp_path / "notebooks"
    (root / "en").mkdir(parents=True)
    for name in TWO:
        shutil.copy2(NOTEBOOKS / "en" / name, root / "en" / name)
    return root


def _translate(text: str, lang: str) -> str:
    """A stand-in translation that keeps the structure the parity test compares."""
    filler = {"ko": "번역된 문장입니다.", "zh": "这是译文。"}[lang]
    lines = []
    for line in text.split("\n"):
        heading = re.match(r"^(#+\s+(?:\d+(?:\.\d+)*\s)?)", line)
        lines.append(heading.group(1) + filler if heading else filler if line.strip() else line)
    return "\n".join(lines)


def _translate_all(root: Path, lang: str) -> None:
    for name in TWO:
        path = root / lang / name
        notebook = i18n.load(path)
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                cell["source"] = i18n.as_lines(_translate(i18n.source(cell), lang))
        path.write_text(i18n.dumps(notebook), encoding="utf-8")
        assert i18n.main(["--root", str(root), "--mark-translated", str(path)]) == 0


def test_sync_copies_code_adds_placeholders_and_is_idempotent(tmp_path):
    root = _scratch(tmp_path)
    assert i18n.main(["--root", str(root)]) == 0
    for name in TWO:
        english_text = (root / "en" / name).read_text(encoding="utf-8")
        english = json.loads(english_text)
        assert i18n.dumps(english) == english_text, "the format sync writes is the English one"
        for lang in i18n.TRANSLATIONS:
            translation = i18n.load(root / lang / name)
            assert [c for c in translation["cells"] if c["cell_type"] == "code"] == [
                c for c in english["cells"] if c["cell_type"] == "code"]
            assert i18n.freshness(english, translation).untranslated == [
                c["id"] for c in english["cells"] if c["cell_type"] == "markdown"]
            assert not i18n.structural_drift(english, translation)
    before = {p: p.read_bytes() for p in root.glob("*/*.ipynb")}
    stamps = {p: p.stat().st_mtime_ns for p in before}
    assert i18n.main(["--root", str(root)]) == 0
    assert {p: p.read_bytes() for p in root.glob("*/*.ipynb")} == before
    assert {p: p.stat().st_mtime_ns for p in before} == stamps, "an unchanged file is not rewritten"


def test_sync_keeps_translations_copies_code_fixes_and_follows_new_cells(tmp_path):
    root = _scratch(tmp_path)
    i18n.main(["--root", str(root), "--languages", "ko"])
    _translate_all(root, "ko")
    name = TWO[0]
    english = i18n.load(root / "en" / name)
    code = next(c for c in english["cells"] if c["cell_type"] == "code")
    code["source"] = code["source"] + ["# a fix made once, in English\n"]
    new = {"cell_type": "markdown", "id": "new-01", "metadata": {}, "source": ["A new paragraph.\n"]}
    english["cells"].insert(3, new)
    (root / "en" / name).write_text(i18n.dumps(english), encoding="utf-8")

    assert i18n.main(["--root", str(root), "--languages", "ko", "--check"]) == 1  # drift
    assert i18n.main(["--root", str(root), "--languages", "ko"]) == 0
    assert i18n.main(["--root", str(root), "--languages", "ko", "--check"]) == 0
    translation = i18n.load(root / "ko" / name)
    assert translation["cells"][3]["metadata"]["dldna"]["status"] == "untranslated"
    assert "# a fix made once, in English\n" in next(
        c for c in translation["cells"] if c["id"] == code["id"])["source"]
    kept = [c for c in translation["cells"] if c["cell_type"] == "markdown" and c["id"] != "new-01"]
    assert kept and all("번역된 문장입니다." in i18n.source(c) for c in kept)
    assert i18n.freshness(english, translation).untranslated == ["new-01"]
    with pytest.raises(i18n.TranslationError, match="still the English text"):
        i18n.mark_translated(english, translation, ["new-01"])


def test_parity_test_passes_on_a_scratch_translation_then_fails_on_changed_code(tmp_path, monkeypatch):
    notebooks_tests = _load_module("dldna_test_notebooks", ROOT / "tests" / "test_notebooks.py")
    root = _scratch(tmp_path)
    i18n.main(["--root", str(root), "--languages", "ko"])
    _translate_all(root, "ko")
    monkeypatch.setattr(notebooks_tests, "NOTEBOOKS", root)
    monkeypatch.setattr(notebooks_tests, "ENGLISH", sorted((root / "en").glob("*.ipynb")))
    parity = notebooks_tests.test_every_language_has_the_same_notebooks_and_code
    parity("ko")  # translated markdown, the English code: passes

    path = root / "ko" / TWO[1]
    notebook = i18n.load(path)
    cell = [c for c in notebook["cells"] if c["cell_type"] == "code"][-1]
    cell["source"] = cell["source"] + ["print('only in Korean')\n"]
    path.write_text(i18n.dumps(notebook), encoding="utf-8")
    with pytest.raises(AssertionError, match="code differs from en"):
        parity("ko")
    assert i18n.main(["--root", str(root), "--languages", "ko", "--check"]) == 1
    assert i18n.main(["--root", str(root), "--languages", "ko"]) == 0  # sync repairs it
    parity("ko")


def _note(root: Path, lang: str, name: str):
    """What book/_ext/dldna_i18n.py adds to the page notebooks/<lang>/<name> as it is read."""
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    ext = _load_module("dldna_i18n", ROOT / "book" / "_ext" / "dldna_i18n.py")
    doctree = new_document("page", get_default_settings(Parser))
    section = nodes.section("", nodes.title(text="10.4 제목"), nodes.paragraph(text="본문"))
    doctree += section
    dependencies = []
    app = SimpleNamespace(
        srcdir=str(root.parent),
        config=SimpleNamespace(dldna_notebooks_dir="notebooks", dldna_canonical_language="en"),
        env=SimpleNamespace(docname=f"notebooks/{lang}/{Path(name).stem}",
                            note_dependency=dependencies.append))
    ext.add_freshness_note(app, doctree)
    assert dependencies == [str(root / "en" / name)]
    found = [n for n in doctree.findall(nodes.container) if "dldna-freshness-note" in n["classes"]]
    return found[0] if found else None, section


@pytest.mark.parametrize("lang", i18n.TRANSLATIONS)
def test_an_english_change_makes_the_check_and_the_page_note_react(tmp_path, caplog, lang):
    from sphinx import addnodes

    root = _scratch(tmp_path)
    i18n.main(["--root", str(root), "--languages", lang])
    _translate_all(root, lang)
    name = TWO[0]
    assert i18n.freshness(i18n.load(root / "en" / name), i18n.load(root / lang / name)).stale == []
    assert _note(root, lang, name)[0] is None  # fresh: no note

    english = i18n.load(root / "en" / name)
    changed = [c for c in english["cells"] if c["cell_type"] == "markdown"][1:3]
    for cell in changed:
        cell["source"] = cell["source"] + ["\n", "A sentence the translation does not have yet.\n"]
    (root / "en" / name).write_text(i18n.dumps(english), encoding="utf-8")

    caplog.set_level("WARNING")
    assert i18n.main(["--root", str(root), "--languages", lang, "--check"]) == 0  # stale, no drift
    assert f"2 stale cell(s), English changed since: {[c['id'] for c in changed]}" in caplog.text
    note, section = _note(root, lang, name)
    assert note is not None and section.index(note) == 1, "the note sits under the title"
    assert note["stale"] == 2 and note["untranslated"] == 0
    text = note.astext()
    assert {"ko": "2곳에서 영어 원문의 이전 버전", "zh": "有 2 处译文依据的是英文原文的旧版本"}[lang] in text
    link = next(note.findall(addnodes.pending_xref))
    assert link["reftarget"] == f"/notebooks/en/{Path(name).stem}" and link["refdomain"] == "std"

    # The translator updates one cell and records it: one place left.
    translation = i18n.load(root / lang / name)
    translation, marked = i18n.mark_translated(english, translation, [changed[0]["id"]])
    (root / lang / name).write_text(i18n.dumps(translation), encoding="utf-8")
    assert marked == [changed[0]["id"]] and _note(root, lang, name)[0]["stale"] == 1


def test_mark_refuses_an_unknown_cell(tmp_path):
    root = _scratch(tmp_path)
    i18n.main(["--root", str(root), "--languages", "ko"])
    english, translation = i18n.load(root / "en" / TWO[0]), i18n.load(root / "ko" / TWO[0])
    with pytest.raises(i18n.TranslationError, match="not markdown cells of both"):
        i18n.mark_translated(english, translation, ["no-such-cell"])


# ---------------------------------------------------------------------------------------
# Search of Korean and Chinese text

SEARCH_CASES = [
    ("多模态嵌入的训练", ["多模", "模态", "态嵌", "嵌入", "入的", "的训", "训练"]),
    ("감각으로만 배우는", ["감각", "각으", "으로", "로만", "배우", "우는"]),
    ("CLIP과 ViT", ["CLIP", "과", "ViT"]),
    ("contrastive learning", ["contrastive", "learning"]),
    ("学", ["学"]),
]


@pytest.mark.parametrize(("text", "terms"), SEARCH_CASES)
def test_search_indexes_cjk_as_bigrams_and_english_as_words(text, terms):
    ext = _load_module("dldna_i18n", ROOT / "book" / "_ext" / "dldna_i18n.py")
    assert ext.SearchWithCJK({}).split(text) == terms


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_browser_splits_a_query_like_the_index():
    ext = _load_module("dldna_i18n", ROOT / "book" / "_ext" / "dldna_i18n.py")
    script = ext.SearchWithCJK.js_splitter_code + (
        "\nconst cases = JSON.parse(process.argv[1]);\n"
        "console.log(JSON.stringify(cases.map((c) => splitQuery(c))));\n")
    cases = [text for text, _ in SEARCH_CASES]
    result = subprocess.run(["node", "-e", script, json.dumps(cases)], capture_output=True,
                            text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == [terms for _, terms in SEARCH_CASES]


def test_browser_check_searches_a_cjk_word_of_each_edition_index():
    check = _load_module("dldna_browser_check", ROOT / "scripts" / "browser_check.py")
    pages = {
        "book/ko/index.html": "<html><article><h1>제목</h1><p>사람은 감각으로만 배웁니다.</p></article></html>",
        "book/zh/index.html": "<html><article><p>CLIP 与 <code>代码不算</code>人很少只靠一种感官。</p></article></html>",
    }
    assert check.cjk_query(check.parse_html(pages["book/ko/index.html"])) == "감각"
    assert check.cjk_query(check.parse_html(pages["book/zh/index.html"])) == "很少"

    def results(hrefs):
        items = "".join(f"<li><a href='{h}'>x</a></li>" for h in hrefs)
        return f"<html><ul id='search-results'>{items}</ul></html>"

    found = {"감각": ["book/ko/index.html"], "很少": ["book/en/index.html"]}
    from urllib.parse import unquote

    class Chromium:
        def dump_dom(self, url):
            if "search.html?q=" in url:
                return results(found[unquote(url.split("q=")[1])])
            return pages[url.removeprefix("http://site/")]

    site = SimpleNamespace(base="http://site/")
    listed = [check.Page(rel, 0, 0, False, False) for rel in (*pages, "book/en/index.html")]
    problems = check.check_cjk_search(Chromium(), site, listed)
    assert len(problems) == 1 and "q=很少: no result for book/zh/index.html" in problems[0]
