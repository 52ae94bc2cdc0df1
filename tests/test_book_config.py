"""The book's configuration: _config.yml, _toc.yml, editions, citations, the execution cache.

The fast tests read files only. The one test marked ``slow`` builds a scratch copy of the
book with a second, made-up language and shows from the build log that the translated
notebook reuses the English execution, and that the language switcher falls back to an
edition's index page for a page that edition lacks.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
NOTEBOOKS = ROOT / "notebooks"
CANONICAL = "en"
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
BIB_KEY = re.compile(r"^@\w+\s*\{\s*([^,\s]+)\s*,", re.MULTILINE)
URL_IN_INSTALL_CELL = re.compile(r"""^REPOSITORY_URL\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _toc_files(node) -> list[str]:
    """Every ``file:`` entry of the toc, in order."""
    found = []
    if isinstance(node, dict):
        if "file" in node:
            found.append(node["file"])
        for key in ("root",):
            if key in node:
                found.append(node[key])
        for value in node.values():
            if isinstance(value, (list, dict)):
                found += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += _toc_files(item)
    return found


def _language_parts(toc: dict) -> dict[str, list[str]]:
    """``{lang: [notebook files]}`` for each part whose chapter is ``book/<lang>/index``."""
    parts = {}
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            match = re.fullmatch(r"book/([^/]+)/index", chapter.get("file", ""))
            if match:
                parts[match.group(1)] = _toc_files(chapter.get("sections", []))
    return parts


def _existing_source(docname: str, root: Path = ROOT) -> Path | None:
    for suffix in (".md", ".ipynb"):
        if (root / f"{docname}{suffix}").is_file():
            return root / f"{docname}{suffix}"
    return None


def _languages() -> list[str]:
    return sorted(p.name for p in NOTEBOOKS.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _cache_key(notebook: nbformat.NotebookNode) -> str:
    """The key jupyter-cache (as used by the book build) files an execution under."""
    from jupyter_cache.cache.main import JupyterCacheBase

    # Hashing touches no files: the path is never created.
    return JupyterCacheBase(ROOT / "_build" / ".jupyter_cache").create_hashed_notebook(notebook)[1]


# ---------------------------------------------------------------------------------------
# _config.yml


def test_config_executes_from_the_cache_with_a_cell_timeout():
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert isinstance(execute["timeout"], int) and 0 < execute["timeout"] <= 600
    assert execute["allow_errors"] is False


def test_config_serves_mathjax_and_mermaid_from_the_site():
    sphinx = CONFIG["sphinx"]["config"]
    assert "sphinxcontrib.mermaid" in CONFIG["sphinx"]["extra_extensions"]
    for key in ("mathjax_path", "mermaid_use_local"):
        path = sphinx[key]
        assert "://" not in path and not path.startswith("/"), f"{key} must be a local file"
        assert path.startswith("vendor/"), f"{key} must point into book/_static/vendor"
    assert sphinx["html_static_path"] == ["book/_static"]
    assert not (ROOT / "_static").exists(), (
        "a top-level _static/ makes Jupyter Book add every .js in it to every page"
    )


def test_config_local_extension_templates_and_bibliography_exist():
    for name, folder in CONFIG["sphinx"]["local_extensions"].items():
        assert (ROOT / folder / f"{name}.py").is_file()
    for folder in CONFIG["sphinx"]["config"]["templates_path"]:
        assert (ROOT / folder / "language-switcher.html").is_file()
    for bib in CONFIG["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()


def test_repository_url_is_a_github_repository():
    url = CONFIG["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert CONFIG["launch_buttons"]["colab_url"].startswith("https://")
    assert CONFIG["launch_buttons"]["binderhub_url"].startswith("https://")
    assert "path_to_book" not in CONFIG["repository"] or CONFIG["repository"]["path_to_book"] not in (".", "./")


# ---------------------------------------------------------------------------------------
# _toc.yml


def test_every_toc_file_exists():
    missing = [doc for doc in _toc_files(TOC) if _existing_source(doc) is None]
    assert not missing, f"in _toc.yml but no .md/.ipynb file: {missing}"


@pytest.mark.parametrize("lang", _languages())
def test_every_notebook_is_in_the_toc(lang):
    listed = set(_toc_files(TOC))
    absent = [
        f"notebooks/{lang}/{p.stem}"
        for p in sorted((NOTEBOOKS / lang).glob("*.ipynb"))
        if f"notebooks/{lang}/{p.stem}" not in listed
    ]
    assert not absent, f"add to the {lang} part of _toc.yml: {absent}"


def test_one_numbered_part_per_language_with_the_same_files():
    parts = _language_parts(TOC)
    assert CANONICAL in parts, "no part with book/en/index"
    for lang in _languages():
        assert lang in parts, f"notebooks/{lang}/ has no part in _toc.yml"
        assert (ROOT / "book" / lang / "index.md").is_file()
    english = [f.split("/", 2)[2] for f in parts[CANONICAL]]
    for lang, files in parts.items():
        if not files and lang not in _languages():
            continue  # an edition whose notebooks are not translated yet: its index only
        assert all(f.startswith(f"notebooks/{lang}/") for f in files), (lang, files)
        assert [f.split("/", 2)[2] for f in files] == english, f"part {lang} differs from en"
    for part in TOC["parts"]:
        if any(re.fullmatch(r"book/[^/]+/index", c.get("file", "")) for c in part["chapters"]):
            assert part.get("caption"), "the caption names the edition in the switcher"
            assert part.get("numbered") == 2


def test_edition_index_pages_have_no_level_two_headings():
    # A "##" heading would be numbered 10.1 ahead of the first notebook (see _toc.yml).
    for index in sorted((ROOT / "book").glob("*/index.md")):
        text = re.sub(r"```.*?```", "", index.read_text(encoding="utf-8"), flags=re.S)
        assert not re.search(r"^##\s", text, re.M), index


def test_toc_comment_lists_the_full_english_edition():
    comment = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    planned = re.findall(r"^#\s+- file: (notebooks/en/\S+)", comment, re.M)
    assert len(planned) == 10 and planned == sorted(planned)
    assert set(_language_parts(TOC)[CANONICAL]) <= set(planned)


# ---------------------------------------------------------------------------------------
# Notebooks against the book


def _all_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*/*.ipynb"))


def test_cited_keys_exist_in_references_bib():
    keys = set(BIB_KEY.findall((ROOT / "book" / "references.bib").read_text(encoding="utf-8")))
    sources = [(p, "".join("".join(c["source"]) for c in json.loads(p.read_text(encoding="utf-8"))["cells"]
                            if c["cell_type"] == "markdown")) for p in _all_notebooks()]
    sources += [(p, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "book").rglob("*.md"))]
    unknown = {
        f"{path.relative_to(ROOT)}: {key.strip()}"
        for path, text in sources
        for group in CITE.findall(text)
        for key in group.split(",")
        if key.strip() not in keys
    }
    assert not unknown, f"cited but not in book/references.bib: {sorted(unknown)}"


@pytest.mark.parametrize("path", _all_notebooks(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_install_cell_uses_the_configured_repository_url(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    found = URL_IN_INSTALL_CELL.findall("".join(code[0]["source"]))
    assert found == [CONFIG["repository"]["url"]], (
        f"{path.name}: the first code cell must set REPOSITORY_URL = "
        f"{CONFIG['repository']['url']!r} (the URL in _config.yml), found {found}"
    )


def test_cache_key_ignores_markdown_and_notebook_metadata():
    """What lets a translation reuse the English execution, on a real notebook."""
    english = sorted((NOTEBOOKS / CANONICAL).glob("*.ipynb"))[0]
    original = nbformat.read(english, as_version=4)
    translated = copy.deepcopy(original)
    translated.metadata["language"] = "xx"
    translated.metadata.setdefault("language_info", {})["name"] = "python"
    for cell in translated.cells:
        cell["id"] = hashlib.md5(cell.get("id", "").encode()).hexdigest()[:8]
        if cell.cell_type == "markdown":
            cell.source = "Traduction: " + cell.source
    assert _cache_key(translated) == _cache_key(original)
    # ...but the code, its cell metadata and the kernel are part of the key.
    for change in ("source", "metadata", "kernel"):
        broken = copy.deepcopy(original)
        first_code = next(c for c in broken.cells if c.cell_type == "code")
        if change == "source":
            first_code.source += "\n"
        elif change == "metadata":
            first_code.metadata["collapsed"] = True
        else:
            broken.metadata["kernelspec"]["display_name"] = "Python 3 (translated)"
        assert _cache_key(broken) != _cache_key(original), change


@pytest.mark.parametrize(
    "path",
    [p for p in _all_notebooks() if p.parent.name != CANONICAL],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_translation_shares_the_english_cache_key(path):
    english = NOTEBOOKS / CANONICAL / path.name
    assert english.is_file(), f"{path} has no English original"
    assert _cache_key(nbformat.read(path, as_version=4)) == _cache_key(
        nbformat.read(english, as_version=4)
    ), f"{path} would be executed again: its code cells, their metadata or kernelspec differ from en"


# ---------------------------------------------------------------------------------------
# The local extension and the scripts, without a build


def test_editions_are_the_notebook_folders_canonical_first(tmp_path):
    ext = _load_module("dldna_book", ROOT / "book" / "_ext" / "dldna_book.py")
    for lang, count in (("zh", 1), ("en", 2), ("ko", 1), ("empty", 0), (".hidden", 1)):
        (tmp_path / lang).mkdir()
        for i in range(count):
            (tmp_path / lang / f"10_0{i}.ipynb").write_text("{}")
    assert ext.discover_languages(tmp_path, "en") == ["en", "ko", "zh"]
    assert ext.discover_languages(tmp_path / "missing", "en") == []


def test_notebook_sections_are_numbered_from_their_file_names():
    ext = _load_module("dldna_book", ROOT / "book" / "_ext" / "dldna_book.py")
    # Sphinx counted 10_07_vit as the 4th page: it is still section 10.7.
    assert ext.section_prefix("notebooks/ko/10_07_vit", (1, 4), 10) == (10, 7)
    assert ext.section_prefix("book/ko/index", (1,), 10) == (10,)
    assert ext.section_prefix("notebooks/en/notes", (1, 2), 10) == (10, 2)
    assert ext.section_prefix("notebooks/en/11_02_x", (1, 2), 10) == (10, 2)
    assert ext._renumber((1, 4, 2), (1, 4), (10, 7)) == (10, 7, 2)
    assert ext._renumber([1, 4], (1, 4), (10, 7)) == [10, 7]
    assert ext._renumber((2, 1), (1, 4), (10, 7)) == (2, 1) and ext._renumber(None, (1,), (10,)) is None


def test_edition_names_come_from_the_toc_captions():
    from sphinx_external_toc.parsing import parse_toc_yaml

    ext = _load_module("dldna_book", ROOT / "book" / "_ext" / "dldna_book.py")
    captions = ext.part_captions(parse_toc_yaml(ROOT / "_toc.yml"))
    assert captions["book/en/index"] == "English"


def _fake_npm_tarball(path: Path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    import base64

    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def test_fetch_web_assets_unpacks_only_what_the_site_serves(tmp_path, monkeypatch):
    fetch = _load_module("fetch_web_assets", ROOT / "scripts" / "fetch_web_assets.py")
    monkeypatch.setattr(fetch, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(fetch, "VENDOR_DIR", tmp_path / "vendor")
    monkeypatch.setattr(fetch, "ROOT", tmp_path)
    (tmp_path / "cache").mkdir()
    package = fetch.PACKAGES[0]
    files = {
        "package/LICENSE": b"Apache",
        "package/es5/tex-mml-chtml.js": b"mathjax",
        "package/es5/tex-svg.js": b"other component",
        "package/es5/output/chtml/fonts/woff-v2/Main.woff": b"font",
        "package/es5/output/svg.js": b"svg output",
        "package/README.md": b"readme",
    }
    integrity = _fake_npm_tarball(tmp_path / "cache" / package.tarball_name, files)
    package = type(package)(**{**package.__dict__, "integrity": integrity})

    target = fetch.vendor(package)
    got = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert got == ["LICENSE", "VENDORED.txt", "output/chtml/fonts/woff-v2/Main.woff", "tex-mml-chtml.js"]
    assert fetch.is_vendored(package)
    stamp = (target / "VENDORED.txt").stat().st_mtime_ns
    fetch.vendor(package)  # idempotent: nothing is unpacked again
    assert (target / "VENDORED.txt").stat().st_mtime_ns == stamp

    tampered = type(package)(**{**package.__dict__, "version": "0.0.0", "integrity": "sha512-AAAA"})
    (tmp_path / "cache" / tampered.tarball_name).write_bytes(b"not the package")
    with pytest.raises(fetch.AssetError, match="integrity"):
        fetch.vendor(tampered)
    assert not (tmp_path / "cache" / tampered.tarball_name).exists()


def test_browser_check_flags_untypeset_math_and_dead_links(tmp_path):
    check = _load_module("browser_check", ROOT / "scripts" / "browser_check.py")
    (tmp_path / "book" / "en").mkdir(parents=True)
    (tmp_path / "book" / "en" / "index.html").write_text("<html></html>")
    page = check.Page(rel="notebooks/en/x.html", math=2, mermaid=1, images=True, chapter=True)
    base = "http://127.0.0.1:1/"
    dom = check.parse_html(
        "<html><head><title>10.1. Title — Book</title>"
        "<script src='https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js'></script>"
        "</head><body><article>"
        "<h1>10.1. Title<a>#</a></h1><p>Inline <span class='math'><mjx-container>x</mjx-container></span>"
        " and raw \\(y\\)</p><div class='mermaid'>graph LR; a-->b</div>"
        "<div class='cell_output'><pre>text only</pre></div></article>"
        "<nav class='dldna-language-switcher'><a href='../../book/en/index.html'>English</a>"
        "<a href='../xx/x.html'>XX</a></nav>"
        "<a href='https://colab.research.google.com/github/o/r/blob/main/x.ipynb'>Colab</a>"
        "</body></html>"
    )
    problems = "\n".join(check.check_page(dom, page, base + page.rel, base, tmp_path, editions=2))
    assert "loads from the network" in problems and "cdn.jsdelivr.net" in problems
    assert "MathJax typeset 1 of 2" in problems
    assert "raw TeX" in problems
    assert "mermaid drew 0 of 1" in problems
    assert "no <img> in a cell output" in problems
    assert "'../xx/x.html'" in problems and "'../../book/en/index.html'" not in problems
    assert "no Binder launch link" in problems and "no Colab" not in problems
    assert "no .ipynb download link" in problems
    assert "<title>" not in problems  # "Title" is in the <title>


# ---------------------------------------------------------------------------------------
# A scratch build with a second language (slow: executes one notebook, ~1 minute)

SCRATCH_LANG = "xx"
SHARED_NOTEBOOK = "10_02_captioning_and_vqa"
ONLY_IN_EN = "10_01_introduction"


def _scratch_book(dest: Path) -> None:
    """A copy of the book with an ``xx`` edition that has one of the two English notebooks."""
    for name in ("_config.yml",):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "book", dest / "book", ignore=shutil.ignore_patterns("__pycache__"))
    vendor = dest / "book" / "_static" / "vendor"
    sphinx = CONFIG["sphinx"]["config"]
    for key in ("mathjax_path", "mermaid_use_local"):
        # Stand-ins when the assets were never fetched: this build is about the cache and
        # the switcher, the browser check covers the assets.
        asset = dest / "book" / "_static" / sphinx[key]
        if not asset.is_file():
            asset.parent.mkdir(parents=True, exist_ok=True)
            asset.write_text("// stand-in\n")
    assert vendor.is_dir()

    english = dest / "notebooks" / "en"
    english.mkdir(parents=True)
    shutil.copy2(NOTEBOOKS / "en" / f"{SHARED_NOTEBOOK}.ipynb", english)
    intro = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                  "mystnb": {"execution_mode": "off"}},
        cells=[nbformat.v4.new_markdown_cell("# Introduction\n\nOnly in English, $e^{i\\pi}+1=0$.")],
    )
    nbformat.write(intro, english / f"{ONLY_IN_EN}.ipynb")

    scratch = dest / "notebooks" / SCRATCH_LANG
    scratch.mkdir()
    translated = nbformat.read(NOTEBOOKS / "en" / f"{SHARED_NOTEBOOK}.ipynb", as_version=4)
    translated.metadata["language"] = SCRATCH_LANG
    for number, cell in enumerate(translated.cells):
        cell["id"] = f"{SCRATCH_LANG}-{number}"
        if cell.cell_type == "markdown":
            cell.source = re.sub(r"^(#+ )", r"\1[xx] ", cell.source, flags=re.M)
    nbformat.write(translated, scratch / f"{SHARED_NOTEBOOK}.ipynb")
    (dest / "book" / SCRATCH_LANG).mkdir()
    (dest / "book" / SCRATCH_LANG / "index.md").write_text(
        "# [xx] Multimodal Deep Learning\n\n```{tableofcontents}\n```\n", encoding="utf-8"
    )

    toc = copy.deepcopy(TOC)
    # en and xx only: the parts of the other editions would add links to the switcher.
    toc["parts"] = [p for p in toc["parts"]
                    if not re.fullmatch(r"book/(?!en/)[^/]+/index", p["chapters"][0]["file"])]
    english_part = next(p for p in toc["parts"] if p["chapters"][0]["file"] == "book/en/index")
    english_part["chapters"][0]["sections"] = [
        {"file": f"notebooks/en/{ONLY_IN_EN}"}, {"file": f"notebooks/en/{SHARED_NOTEBOOK}"}
    ]
    scratch_part = {
        "caption": "Scratch",
        "numbered": 2,
        "chapters": [{"file": f"book/{SCRATCH_LANG}/index",
                      "sections": [{"file": f"notebooks/{SCRATCH_LANG}/{SHARED_NOTEBOOK}"}]}],
    }
    toc["parts"].insert(toc["parts"].index(english_part) + 1, scratch_part)
    (dest / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")


def _switcher(html: str) -> dict[str, str]:
    nav = re.search(r'<nav class="dldna-language-switcher".*?</nav>', html, re.S)
    assert nav, "no language switcher"
    return dict(
        (code, href)
        for href, code in re.findall(r'<a href="([^"]*)" hreflang="([^"]+)"', nav.group(0))
    )


@pytest.mark.slow
def test_scratch_language_reuses_the_english_execution_and_falls_back(tmp_path):
    """Build en + a made-up ``xx`` edition; read the log and the HTML."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.is_file():
        pytest.skip("jupyter-book is not installed in this environment (pip install -e '.[book]')")
    _scratch_book(tmp_path)
    env = {
        **os.environ,
        "DLDNA_PROFILE": "smoke",
        "MPLBACKEND": "Agg",
        "DLDNA_DATA_DIR": os.environ.get("DLDNA_DATA_DIR", str(ROOT / "data")),
    }
    result = subprocess.run(
        [str(jupyter_book), "build", str(tmp_path), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )
    log = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, log[-6000:]

    # One execution; the other language's copy comes from jupyter-cache.
    runs = {
        lang: re.findall(rf"notebooks/{lang}/{SHARED_NOTEBOOK}\.ipynb: (Executed notebook|Using cached notebook)", log)
        for lang in (CANONICAL, SCRATCH_LANG)
    }
    assert sorted(runs[CANONICAL] + runs[SCRATCH_LANG]) == ["Executed notebook", "Using cached notebook"], runs
    assert runs[SCRATCH_LANG] == ["Using cached notebook"], runs  # Sphinx reads en before xx

    html = tmp_path / "_build" / "html"
    pages = {
        "en_shared": html / "notebooks" / "en" / f"{SHARED_NOTEBOOK}.html",
        "en_only": html / "notebooks" / "en" / f"{ONLY_IN_EN}.html",
        "xx_shared": html / "notebooks" / SCRATCH_LANG / f"{SHARED_NOTEBOOK}.html",
        "landing": html / "book" / "index.html",
    }
    text = {name: path.read_text(encoding="utf-8") for name, path in pages.items()}
    outputs = text["xx_shared"].count('class="cell_output')
    assert outputs > 0 and outputs == text["en_shared"].count('class="cell_output')
    assert "[xx] " in text["xx_shared"] and '<html lang="xx"' in text["xx_shared"]
    # Figures too, although the test runs with MPLBACKEND=Agg (the build switches kernels
    # to the inline backend), and the translation shows the same ones.
    output_image = re.compile(r'<img alt="[^"]*" src="([^"]*/_images/[^"]+\.png)"')
    figures = output_image.findall(text["xx_shared"])
    assert figures and figures == output_image.findall(text["en_shared"])

    assert _switcher(text["en_shared"]) == {
        "en": f"{SHARED_NOTEBOOK}.html", SCRATCH_LANG: f"../{SCRATCH_LANG}/{SHARED_NOTEBOOK}.html"
    }
    assert _switcher(text["xx_shared"]) == {
        "en": f"../en/{SHARED_NOTEBOOK}.html", SCRATCH_LANG: f"{SHARED_NOTEBOOK}.html"
    }
    # The page xx lacks: its link falls back to the xx index, never a 404.
    assert _switcher(text["en_only"])[SCRATCH_LANG] == f"../../book/{SCRATCH_LANG}/index.html"
    assert _switcher(text["landing"]) == {"en": "en/index.html", SCRATCH_LANG: f"{SCRATCH_LANG}/index.html"}
    for page in html.rglob("*.html"):
        if 'class="dldna-language-switcher"' in (body := page.read_text(encoding="utf-8")):
            for href in _switcher(body).values():
                assert (page.parent / href).resolve().is_file(), f"{page}: {href}"

    # The landing page names the edition by its _toc.yml caption; both editions number
    # the notebook 10.2 from its file name, although it is xx's first page.
    assert ">Scratch<" in text["landing"]
    for name in ("en_shared", "xx_shared"):
        assert '<h1><span class="section-number">10.2. </span>' in text[name], name


# ---------------------------------------------------------------------------------------
# Repository hygiene a user meets: what git ignores, how the package declares its licence


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("data/flickr8k/captions.txt", True),  # `make data`
        ("notebooks/en/data/cifar10/x.bin", True),  # a notebook run from its own folder
        ("colab/en/data/synthetic/captions.txt", True),
        ("build/lib/dldna/__init__.py", True),  # setuptools
        ("dldna/data/new_module.py", False),  # the package's data subpackage is source
        ("notebooks/en/10_99_new.ipynb", False),
    ],
)
def test_gitignore_covers_generated_folders_only(path, ignored):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert result.returncode == (0 if ignored else 1), f"{path}: ignored should be {ignored}"


def test_pyproject_licence_is_an_spdx_expression():
    # The table form (`license = {text = ...}`) is deprecated; setuptools stops building it
    # on 2027-02-18, which would break every install cell.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^license = "MIT"', text, re.M), "use the SPDX form license = \"MIT\""
    requires = re.search(r"^requires = \[(.*)\]", text, re.M).group(1)
    version = re.search(r'"setuptools>=(\d+)', requires)
    assert version and int(version.group(1)) >= 77, f"PEP 639 licences need setuptools>=77: {requires}"


def test_browser_check_flags_code_wider_than_the_page(tmp_path):
    check = _load_module("browser_check", ROOT / "scripts" / "browser_check.py")
    served = check.with_overflow_probe(b"<html><body><p>x</p></body></html>")
    assert served.index(b"data-dldna-overflow") < served.index(b"</body>")
    page = check.Page(rel="notebooks/en/10_06_x.html", math=0, mermaid=0, images=False, chapter=True)
    base = "http://127.0.0.1:1/"
    html = (
        "<html {measured}><head><title>10.6. X — Book</title></head><body><article><h1>10.6. X</h1>"
        "<div class='cell_input'><pre {wide}>short\nprint('a line far too long')</pre></div>"
        "<div class='cell_output'><pre>fits</pre></div></article>"
        "<a href='https://colab.research.google.com/github/o/r/blob/main/{colab}/en/10_06_x.ipynb'>"
        "Colab</a></body></html>"
    )
    def problems(**parts):
        parts = {"measured": "data-dldna-measured='1'", "wide": "", "colab": "colab", **parts}
        dom = check.parse_html(html.format(**parts))
        return "\n".join(check.check_page(dom, page, base + page.rel, base, tmp_path, editions=0))
    assert "wider than the page" not in problems() and "probe did not run" not in problems()
    found = problems(wide="data-dldna-overflow='120'")
    assert "1 code block(s) wider than the page" in found and "cell +120px" in found
    assert "print('a line far too long')" in found
    assert "probe did not run" in problems(measured="")
    assert "does not open the plain copy" in problems(colab="notebooks")


def test_colab_button_opens_the_plain_copy_of_the_page_in_its_language():
    from types import SimpleNamespace

    ext = _load_module("dldna_book", ROOT / "book" / "_ext" / "dldna_book.py")
    config = CONFIG["sphinx"]["config"]
    assert config["dldna_plain_notebooks_dir"] == "colab"
    blob = "https://colab.research.google.com/github/o/r/blob/main"
    assert ext.plain_copy_url(f"{blob}/notebooks/ko/10_06_x.ipynb", "notebooks", "colab") == (
        f"{blob}/colab/ko/10_06_x.ipynb")
    app = SimpleNamespace(config=SimpleNamespace(dldna_plain_notebooks_dir="colab",
                                                 dldna_notebooks_dir="notebooks"))
    binder = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/notebooks/zh/10_06_x.ipynb"
    context = {"header_buttons": [{"type": "group", "buttons": [
        {"text": "Binder", "url": binder},
        {"text": "Colab", "url": f"{blob}/notebooks/zh/10_06_x.ipynb"}]}]}
    ext.point_colab_at_plain_copies(app, "notebooks/zh/10_06_x", "page.html", context, None)
    buttons = context["header_buttons"][0]["buttons"]
    assert buttons[1]["url"] == f"{blob}/colab/zh/10_06_x.ipynb"
    assert buttons[0]["url"] == binder  # JupyterLab on Binder renders the MyST source
    for lang in _languages():  # a copy for every page a button can point at
        for notebook in sorted((NOTEBOOKS / lang).glob("*.ipynb")):
            assert (ROOT / "colab" / lang / notebook.name).is_file(), notebook


def test_jupyterlab_installs_come_with_the_myst_renderer():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for extra in re.findall(r"^(\w+) = \[(.*?)^\]", text, re.M | re.S):
        if '"jupyterlab' in extra[1] and "jupyterlab>=" in extra[1]:
            assert '"jupyterlab-myst' in extra[1], f"extra {extra[0]!r} installs JupyterLab without jupyterlab-myst"
