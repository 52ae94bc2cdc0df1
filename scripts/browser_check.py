#!/usr/bin/env python3
"""Open the built book in headless Chromium and check that the pages really render.

A successful Sphinx build says nothing about what a reader sees: MathJax or mermaid may
fail to load (a CDN the reader cannot reach, a wrong path), outputs may be missing, a
language link may point nowhere. This script serves ``_build/html`` on a loopback port,
lets Chromium (Debian package ``chromium``, networking off) run each page's scripts, and
checks the rendered DOM of the landing page, every edition's index page and every
chapter page (``notebooks/<lang>/*.html``):

* the page has a title (``<title>`` and an ``<h1>`` that it contains);
* no script, stylesheet or image comes from another host (Chromium resolves nothing but
  the loopback server, so such a page would also fail the checks below);
* every math element was typeset by MathJax (``mjx-container``), no raw TeX is left;
* every mermaid diagram became an SVG;
* where the executed notebook (from the build's jupyter-cache) has an image output, the
  page shows an ``<img>`` in a cell output, and its file exists;
* the language switcher is there, lists every edition, and each link resolves to a file;
* chapter pages have Colab, Binder and ``.ipynb`` download links; the Colab link and the
  download are the plain-Markdown copy of the notebook (``colab/<lang>/``, made by
  ``scripts/plain_notebooks.py``), the Binder link the MyST source;
* no code block (cell input, listing or output) is wider than its box: the server adds a
  probe to every page that marks a ``<pre>`` whose content overflows horizontally
  (``scrollWidth > clientWidth``) at a 1280-pixel-wide window;
* the theme's search finds a chapter page, and on each Korean or Chinese page of an
  edition's index a two-character word from the middle of a run of text written without
  spaces (Sphinx's default splitter finds none such; book/_ext/dldna_i18n.py indexes
  bigrams) finds that page;
* a font for Korean and for Chinese is installed when the site has such pages (Debian
  ``fonts-noto-cjk``; without one Chromium draws boxes).

It also opens one page with math and one with a diagram from ``file://`` (a reader
opening the HTML from disk), and saves screenshots of the landing page, of a chapter
page with an output image (its top, and the first 12000 px) and of pages 10.2, 10.6 and
10.8 of every edition under ``_build/screenshots``. Exits 1 with a list of failures, 2 when Chromium is
missing. Standard library only (plus jupyter-cache, from the book's venv, to read the
executed notebooks).

Usage: python scripts/browser_check.py [_build/html] [--screenshots DIR] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    # Nothing but the loopback server resolves: the site must render with no internet.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
VIRTUAL_TIME_MS = 20000  # enough for MathJax's fonts and mermaid's lazily imported chunks
INSTALL_HINT = (
    "Chromium is needed for the browser check but was not found at {path}.\n"
    "Install it (Debian/Ubuntu) with:\n"
    "    sudo apt-get update && sudo apt-get install -y chromium\n"
    "or point CHROMIUM=/path/to/chromium (or --chromium) at another Chromium or Chrome."
)
TEX_LEFTOVERS = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{")
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
WINDOW = "1280,2000"  # a desktop window: what the page width of ~88 code columns is set for
# Added to every served page: after load, mark each <pre> whose content is wider than its
# box, so that the dumped DOM says which code blocks a reader would have to scroll.
OVERFLOW_PROBE = b"""<script>
window.addEventListener("load", () => setTimeout(() => {
  for (const pre of document.querySelectorAll("article pre")) {
    const wide = pre.scrollWidth - pre.clientWidth;
    if (wide > 1) pre.setAttribute("data-dldna-overflow", String(wide));
  }
  document.documentElement.setAttribute("data-dldna-measured", "1");
}, 300));
</script>
"""
SCREENSHOT_SECTIONS = ("10_02_", "10_06_", "10_08_")  # the pages a reader's check looks at

# ---------------------------------------------------------------------------------------
# A minimal DOM, enough to query what Chromium's --dump-dom prints.

VOID_TAGS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
}
NO_TEXT_TAGS = {"script", "style", "pre", "code", "textarea", "noscript", "template"}


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None = None
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self):
        """This element and all its descendant elements, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        return [
            element
            for element in self.iter()
            if (tag is None or element.tag == tag) and (cls is None or cls in element.classes)
        ]

    def find(self, tag: str | None = None, cls: str | None = None) -> Element | None:
        found = self.find_all(tag, cls)
        return found[0] if found else None

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def text(self, prose_only: bool = False) -> str:
        """Text content; with ``prose_only``, without code, scripts and rendered math."""
        parts = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif not (prose_only and (child.tag in NO_TEXT_TAGS or child.tag.startswith("mjx-"))):
                parts.append(child.text(prose_only))
        return "".join(parts)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(element)
        if tag not in VOID_TAGS:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(element)

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_html(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# ---------------------------------------------------------------------------------------
# Serving the site and driving Chromium.


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",  # module scripts need a JavaScript MIME type
        ".js": "text/javascript",
        ".woff": "font/woff",
    }

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return super().do_GET()
        body = with_overflow_probe(path.read_bytes())
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None


def with_overflow_probe(html: bytes) -> bytes:
    """``html`` with :data:`OVERFLOW_PROBE` inserted before ``</body>``."""
    at = html.rfind(b"</body>")
    return html + OVERFLOW_PROBE if at < 0 else html[:at] + OVERFLOW_PROBE + html[at:]


class Site:
    """``html_dir`` served over HTTP on 127.0.0.1 at a free port, for the duration of a with-block."""

    def __init__(self, html_dir: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(html_dir))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Chromium:
    executable: str
    timeout_s: float = 120.0

    def _run(self, extra: list[str], url: str) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="dldna-chromium-") as profile:
            command = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
            return subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )

    def dump_dom(self, url: str, virtual_time_ms: int = VIRTUAL_TIME_MS) -> str:
        """The DOM after the page's scripts ran, serialized as HTML."""
        result = self._run(
            [f"--virtual-time-budget={virtual_time_ms}", f"--window-size={WINDOW}", "--dump-dom"],
            url,
        )
        if result.returncode != 0 or "<html" not in result.stdout:
            raise RuntimeError(
                f"chromium --dump-dom {url} failed (exit {result.returncode}): "
                f"{result.stderr.strip()[-800:]}"
            )
        return result.stdout

    def screenshot(self, url: str, path: Path, size: str = "1280,2000") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        result = self._run(
            [
                f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                f"--window-size={size}",
                f"--screenshot={path}",
            ],
            url,
        )
        if result.returncode != 0 or not path.is_file():
            raise RuntimeError(f"chromium --screenshot {url} failed: {result.stderr.strip()[-800:]}")


# ---------------------------------------------------------------------------------------
# What each page must show.


@dataclass
class Page:
    """One built page and what the static build says it must render."""

    rel: str  # path below the html dir, e.g. "notebooks/en/10_02_x.html"
    math: int  # math elements in the built HTML
    mermaid: int  # mermaid diagrams in the built HTML
    images: bool  # the executed notebook has an image output
    chapter: bool  # a notebook page: launch and download links expected


def _executed_cells(source: Path, cache_dir: Path, execute_copy: Path) -> list[dict]:
    """Code cells of ``source`` as executed by the build.

    myst-nb writes ``_build/jupyter_execute/*.ipynb`` without outputs when a notebook came
    from the cache, so the outputs are looked up in jupyter-cache (the same lookup the
    build does); the jupyter_execute copy is the fallback.
    """
    if source.is_file() and cache_dir.is_dir():
        try:
            import nbformat
            from jupyter_cache import get_cache

            cache = get_cache(cache_dir)
            record = cache.match_cache_notebook(nbformat.read(source, as_version=4))
            return [c for c in cache.get_cache_bundle(record.pk).nb.cells if c.cell_type == "code"]
        except (ImportError, KeyError, OSError):
            pass
    if execute_copy.is_file():
        cells = json.loads(execute_copy.read_text(encoding="utf-8")).get("cells", [])
        return [c for c in cells if c.get("cell_type") == "code"]
    return []


def _has_image_output(cells: list[dict]) -> bool:
    return any(
        mime in output.get("data", {})
        for cell in cells
        for output in cell.get("outputs", [])
        for mime in IMAGE_MIME_TYPES
    )


def collect_pages(html_dir: Path) -> list[Page]:
    """The landing page, each edition's index page and every chapter page."""
    build_dir = html_dir.parent
    source_dir = build_dir.parent
    rels = ["book/index.html"]
    rels += sorted(p.relative_to(html_dir).as_posix() for p in html_dir.glob("book/*/*.html"))
    rels += sorted(p.relative_to(html_dir).as_posix() for p in html_dir.glob("notebooks/*/*.html"))
    pages = []
    for rel in rels:
        static = parse_html((html_dir / rel).read_text(encoding="utf-8"))
        article = static.find(tag="article") or static
        math = [e for e in article.iter() if "math" in e.classes and e.tag in ("span", "div")]
        diagrams = [e for e in article.iter() if "mermaid" in e.classes and e.tag in ("pre", "div")]
        chapter = rel.startswith("notebooks/")
        images = chapter and _has_image_output(
            _executed_cells(
                source_dir / Path(rel).with_suffix(".ipynb"),
                build_dir / ".jupyter_cache",
                build_dir / "jupyter_execute" / Path(rel).with_suffix(".ipynb"),
            )
        )
        pages.append(Page(rel=rel, math=len(math), mermaid=len(diagrams), images=images,
                          chapter=chapter))
    return pages


def _local_target(html_dir: Path, page_url: str, href: str, base: str) -> Path | None:
    """The file a relative link on ``page_url`` points at, or None for other sites."""
    absolute = urljoin(page_url, href)
    if not absolute.startswith(base):
        return None
    path = unquote(urlsplit(absolute).path)[len(urlsplit(base).path):]
    path = posixpath.normpath(path) if path else "index.html"
    if path.endswith("/") or path == ".":
        path = posixpath.join(path, "index.html")
    return html_dir / path


def check_page(dom: Element, page: Page, url: str, base: str, html_dir: Path,
               editions: int) -> list[str]:
    """Return what is wrong with the rendered ``dom`` of ``page``."""
    problems = []
    title = (dom.find("title").text().strip() if dom.find("title") else "")
    article = dom.find(tag="article") or dom
    h1 = article.find("h1")
    heading = re.sub(r"^[\d.]+\s*|#$", "", h1.text().strip()).strip() if h1 else ""
    if not title:
        problems.append("no <title>")
    if not heading:
        problems.append("no <h1> heading")
    elif heading not in title:
        problems.append(f"<title> {title!r} does not contain the heading {heading!r}")

    external = [
        element.attrs.get("src") or element.attrs.get("href")
        for element in dom.iter()
        if (element.tag in ("script", "img", "iframe") and "src" in element.attrs)
        or (element.tag == "link" and "stylesheet" in element.attrs.get("rel", ""))
    ]
    external = [u for u in external if u and re.match(r"(https?:)?//", u)]
    if external:
        problems.append(f"loads from the network (the site must work offline): {external}")

    if page.math:
        typeset = article.find_all("mjx-container")
        if len(typeset) < page.math:
            problems.append(
                f"MathJax typeset {len(typeset)} of {page.math} math elements "
                "(is _static/vendor/mathjax there and loading?)"
            )
        leftovers = TEX_LEFTOVERS.findall(article.text(prose_only=True))
        if leftovers:
            problems.append(f"raw TeX left in the text: {sorted(set(leftovers))}")

    if page.mermaid:
        drawn = [e for e in article.iter() if "mermaid" in e.classes and e.find("svg")]
        if len(drawn) < page.mermaid:
            problems.append(f"mermaid drew {len(drawn)} of {page.mermaid} diagrams")

    if page.images:
        images = [
            img for img in article.find_all("img")
            if any("cell_output" in a.classes or "output" in a.classes for a in img.ancestors())
        ]
        if not images:
            problems.append("the notebook has an image output but the page shows no <img> in a cell output")
        for img in images:
            target = _local_target(html_dir, url, img.attrs.get("src", ""), base)
            if target is not None and not target.is_file():
                problems.append(f"output image {img.attrs.get('src')} does not exist")

    switcher = dom.find(cls="dldna-language-switcher")
    if switcher is None:
        problems.append("no language switcher")
    else:
        links = switcher.find_all("a")
        if len(links) != editions:
            problems.append(f"language switcher has {len(links)} links, expected {editions}")
        for link in links:
            target = _local_target(html_dir, url, link.attrs.get("href", ""), base)
            if target is None or not target.is_file():
                problems.append(f"language link {link.attrs.get('href')!r} "
                                f"({link.text().strip()}) does not resolve to a built page")

    problems += overflowing_code(dom, article)

    if page.chapter:
        hrefs = [a.attrs.get("href", "") for a in dom.find_all("a")]
        for name, pattern in (("Colab", "colab.research.google.com/github/"),
                              ("Binder", "mybinder.org/v2/")):
            if not any(pattern in href for href in hrefs):
                problems.append(f"no {name} launch link")
        plain = "/" + page.rel.replace("notebooks/", "colab/", 1).removesuffix(".html") + ".ipynb"
        colab = [h for h in hrefs if "colab.research.google.com/github/" in h]
        if colab and not all(h.endswith(plain) for h in colab):
            problems.append(f"Colab link {colab[0]!r} does not open the plain copy ...{plain}")
        downloads = [h for h in hrefs if h.endswith(".ipynb") and "://" not in h]
        if not downloads:
            problems.append("no .ipynb download link")
        for href in downloads:
            target = _local_target(html_dir, url, href, base)
            if target is None or not target.is_file():
                problems.append(f".ipynb download {href!r} does not exist")
            elif b'"generated_from"' not in target.read_bytes():
                problems.append(f".ipynb download {href!r} is the MyST source, not the plain copy")
    return problems


def overflowing_code(dom: Element, article: Element) -> list[str]:
    """Code blocks the probe marked as wider than their box, or that it did not run."""
    root = dom.find("html") or dom
    if root.attrs.get("data-dldna-measured") != "1":
        return ["the overflow probe did not run (page not served by this script?)"]
    wide = [e for e in article.iter() if "data-dldna-overflow" in e.attrs]
    if not wide:
        return []
    def where(element: Element) -> str:
        kinds = {c for a in element.ancestors() for c in a.classes}
        return "output" if "cell_output" in kinds else "cell" if "cell_input" in kinds else "text"
    shown = "; ".join(
        f"{where(e)} +{e.attrs['data-dldna-overflow']}px: "
        f"{max(e.text().splitlines() or [''], key=len).strip()[:50]!r}" for e in wide[:4])
    return [f"{len(wide)} code block(s) wider than the page (cut off on the right): {shown}"]


CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]{4,}")
FONT_LANGUAGES = {"ko": "ko", "zh": "zh-cn", "ja": "ja"}  # fc-list :lang= names


def search_results(chromium: Chromium, site: Site, query: str) -> list[str]:
    """The hrefs the theme's search page lists for ``query``."""
    from urllib.parse import quote

    results = parse_html(chromium.dump_dom(f"{site.base}search.html?q={quote(query)}"))
    return [a.attrs.get("href", "") for a in results.find_all("a")
            if any(a2.attrs.get("id") == "search-results" for a2 in a.ancestors())]


def cjk_query(dom: Element) -> str | None:
    """A two-character word inside the first long run of Han or Hangul in the article's prose.

    Hangul: the run's first two syllables (a stem with particles after it, 감각으로만);
    Han: two characters from inside a sentence written without spaces.
    """
    article = dom.find("article") or dom
    for paragraph in article.find_all("p"):
        match = CJK_RUN.search(paragraph.text(prose_only=True))
        if match:
            run = match.group(0)
            return run[:2] if "\uac00" <= run[0] <= "\ud7af" else run[1:3]
    return None


def check_cjk_search(chromium: Chromium, site: Site, pages: list[Page]) -> list[str]:
    """Searching a Korean word on a Korean page, a Chinese word on a Chinese page, finds it."""
    problems = []
    for page in pages:
        if not re.fullmatch(r"book/(ko|zh|ja)/index\.html", page.rel):
            continue
        query = cjk_query(parse_html(chromium.dump_dom(site.base + page.rel)))
        if query is None:
            problems.append(f"{page.rel}: no Korean or Chinese text to search for")
            continue
        hrefs = search_results(chromium, site, query)
        if not any(href.split("?")[0].endswith(page.rel) for href in hrefs):
            problems.append(f"search.html?q={query}: no result for {page.rel} (results: {hrefs[:5]})")
        else:
            print(f"  search {query!r}: finds {page.rel}", flush=True)
    return problems


def missing_fonts(pages: list[Page]) -> list[str]:
    """Languages of the site's pages that no installed font covers (fc-list :lang=...)."""
    langs = sorted({m.group(1) for p in pages if (m := re.match(r"(?:book|notebooks)/(ko|zh|ja)/", p.rel))})
    if not langs or shutil.which("fc-list") is None:
        return []
    problems = []
    for lang in langs:
        found = subprocess.run(["fc-list", f":lang={FONT_LANGUAGES[lang]}", "family"],
                               capture_output=True, text=True, check=False).stdout.strip()
        if not found:
            problems.append(f"no font for {lang!r} pages is installed (Debian: apt-get install "
                            "fonts-noto-cjk; `make browser-check` does): text would show as boxes")
    return problems


def check_search(chromium: Chromium, site: Site, page: Page) -> list[str]:
    """The theme's search must find a chapter page from a word of its title."""
    dom = parse_html(chromium.dump_dom(site.base + page.rel))
    h1 = (dom.find("article") or dom).find("h1")
    words = [w for w in re.findall(r"[A-Za-z]{5,}", h1.text() if h1 else "")]
    if not words:
        return []
    query = words[0].lower()
    results = parse_html(chromium.dump_dom(f"{site.base}search.html?q={query}"))
    hrefs = [a.attrs.get("href", "") for a in results.find_all("a")
             if any(a2.attrs.get("id") == "search-results" for a2 in a.ancestors())]
    if not any(Path(page.rel).stem in href for href in hrefs):
        return [f"search.html?q={query}: no result for {page.rel} (results: {hrefs[:5]})"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="where to save PNGs (default: <html_dir>/../screenshots)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--jobs", type=int, default=2, help="pages rendered at once")
    args = parser.parse_args(argv)

    html_dir: Path = args.html_dir.resolve()
    if not (html_dir / "book" / "index.html").is_file():
        print(f"browser check: {html_dir}/book/index.html not found; build the book first "
              "(make book)", file=sys.stderr)
        return 1
    executable = shutil.which(args.chromium) or (args.chromium if Path(args.chromium).is_file() else None)
    if executable is None:
        print(INSTALL_HINT.format(path=args.chromium), file=sys.stderr)
        return 2
    screenshots = (args.screenshots or html_dir.parent / "screenshots").resolve()
    chromium = Chromium(executable)
    pages = collect_pages(html_dir)
    editions = len([p for p in pages if re.fullmatch(r"book/[^/]+/index\.html", p.rel)])
    chapters = [p for p in pages if p.chapter]
    failures: list[str] = []
    start = time.monotonic()

    with Site(html_dir) as site:
        def run(page: Page) -> list[str]:
            url = site.base + page.rel
            try:
                dom = parse_html(chromium.dump_dom(url))
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                return [f"{page.rel}: {error}"]
            problems = check_page(dom, page, url, site.base, html_dir, editions)
            status = "ok" if not problems else f"{len(problems)} problem(s)"
            print(f"  {page.rel}: math {page.math}, diagrams {page.mermaid}, "
                  f"output image {'yes' if page.images else 'no'} -> {status}", flush=True)
            return [f"{page.rel}: {problem}" for problem in problems]

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for problems in pool.map(run, pages):
                failures += problems

        if chapters:
            failures += check_search(chromium, site, chapters[0])
        failures += check_cjk_search(chromium, site, pages)
        failures += missing_fonts(pages)

        # A reader opening the HTML from disk: math and diagrams must render there too.
        for page in ([p for p in pages if p.math][:1] + [p for p in pages if p.mermaid][:1]):
            url = (html_dir / page.rel).as_uri()
            dom = parse_html(chromium.dump_dom(url))
            article = dom.find("article") or dom
            if page.math and not article.find_all("mjx-container"):
                failures.append(f"file://{page.rel}: math not typeset")
            if page.mermaid and not any(e.find("svg") for e in article.iter() if "mermaid" in e.classes):
                failures.append(f"file://{page.rel}: mermaid diagram not drawn")

        # Headless Chromium paints nothing when a screenshot scrolls to an anchor, so the
        # chapter is also shot in one very tall window, which reaches its outputs.
        shots = [("landing.png", pages[0], "1280,2000")]
        shots += [(f"{Path(p.rel).parent.name}_index.png", p, "1280,2000") for p in pages
                  if re.fullmatch(r"book/(ko|zh|ja)/index\.html", p.rel)]
        shot_chapter = next((p for p in chapters if p.images), chapters[0] if chapters else None)
        if shot_chapter is not None:
            stem = f"{Path(shot_chapter.rel).parent.name}_{Path(shot_chapter.rel).stem}"
            shots += [(f"{stem}.png", shot_chapter, "1280,2000"),
                      (f"{stem}_full.png", shot_chapter, "1280,12000")]
        for page in chapters:
            if Path(page.rel).name.startswith(SCREENSHOT_SECTIONS) and page is not shot_chapter:
                stem = f"{Path(page.rel).parent.name}_{Path(page.rel).stem}"
                shots.append((f"{stem}.png", page, "1280,12000"))
        for name, page, size in shots:
            try:
                chromium.screenshot(site.base + page.rel, screenshots / name, size)
                print(f"  screenshot {screenshots / name}")
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                failures.append(f"screenshot of {page.rel}: {error}")

    elapsed = time.monotonic() - start
    if failures:
        print(f"\nbrowser check FAILED ({len(failures)} problem(s), {elapsed:.0f} s):", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"browser check passed: {len(pages)} pages ({len(chapters)} chapter pages, "
          f"{editions} edition(s)) in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
