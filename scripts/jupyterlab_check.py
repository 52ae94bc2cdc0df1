#!/usr/bin/env python3
"""Open the notebooks in JupyterLab (headless Chromium) and check that no raw MyST shows.

The notebooks' markdown is MyST: ``{cite}`` roles, ``:::{note}`` and ``:::{dropdown}``
directives. The site renders them, and in JupyterLab the ``jupyterlab-myst`` extension
(in the ``book`` extra, next to JupyterLab) does. This script starts JupyterLab
on a loopback port over a temporary copy of ``notebooks/`` (nothing it opens can touch
the tracked files), opens each notebook in Chromium with the notebook's windowing turned
off (every cell in the DOM, not only those on screen), and checks the rendered DOM:

* the notebook opened: it shows as many markdown cells as the file has;
* every markdown cell was rendered (it has rendered content, not an editor);
* no rendered prose outside code and math holds a raw role (``{cite}`` followed by its
  key), a directive fence (``:::`` or a `````{name}`` line) or a bare ``{name}`` of one of
  the roles and directives the notebooks use.

Exits 1 with a list of failures, 2 when Chromium or JupyterLab is missing.
Standard library only, plus browser_check's DOM and Chromium helpers.

Usage: python scripts/jupyterlab_check.py [NOTEBOOK ...] [--lang en ko zh] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import INSTALL_HINT, NO_TEXT_TAGS, Chromium, Element, parse_html  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# Chromium's virtual-time budget for one notebook: an upper bound. JupyterLab's loading,
# not this budget, sets how long a page takes (12 s and 40 s budgets took the same time).
VIRTUAL_TIME_MS = 40000
# What rendered prose must not contain: a role with its key (`{cite}` then inline code),
# a directive fence, or the name of a role/directive the notebooks use between braces.
RAW_MYST = re.compile(
    r"\{(?:cite|cite:p|cite:t|ref|doc|numref|eq|term|download|note|tip|warning|important"
    r"|admonition|dropdown|figure|image|mermaid|math|code-cell|glossary|bibliography)\}"
    r"|^\s*:{3,}|^\s*`{3,}\{",
    re.MULTILINE,
)
# Settings: every cell in the DOM, so that the dump has the whole notebook.
SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """JupyterLab serving ``root`` on a free loopback port, for the duration of a with-block."""

    def __init__(self, root: Path, jupyter: str) -> None:
        self.root, self.jupyter = root, jupyter
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.settings = Path(tempfile.mkdtemp(prefix="dldna-lab-settings-"))
        for name, value in SETTINGS.items():
            path = self.settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value), encoding="utf-8")
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> JupyterLab:
        # A loopback server over a scratch copy, without token or XSRF check: the check ends
        # each notebook's session with a plain DELETE, and each notebook gets a workspace.
        command = [
            self.jupyter, "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
            "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False", "--ServerApp.disable_check_xsrf=True",
            f"--LabApp.workspaces_dir={self.settings / 'workspaces'}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(self.settings),
               "JUPYTER_CONFIG_DIR": str(self.settings / "config")}
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.base + "api/status", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer on {self.base} within 120 s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
        shutil.rmtree(self.settings, ignore_errors=True)

    def url(self, rel: str) -> str:
        """``rel`` alone in a workspace of its own (JupyterLab reopens a workspace's tabs)."""
        workspace = re.sub(r"[^\w-]", "-", rel)
        return f"{self.base}lab/workspaces/{workspace}/tree/{rel}?reset"

    def shut_down_kernels(self, rel: str) -> None:
        """End the sessions (and kernels) that opening ``rel`` started: nothing runs here."""
        with urllib.request.urlopen(self.base + "api/sessions", timeout=10) as response:
            sessions = json.load(response)
        for session in sessions:
            if session.get("path") == rel:
                request = urllib.request.Request(f"{self.base}api/sessions/{session['id']}", method="DELETE")
                with urllib.request.urlopen(request, timeout=30):
                    pass


def markdown_cells(path: Path) -> int:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return sum(cell["cell_type"] == "markdown" for cell in notebook["cells"])


# Rendered markdown: jupyterlab-myst's widget, else JupyterLab's own markdown renderer.
RENDERED = ("myst", "jp-RenderedMarkdown")
NOT_PROSE = {"katex", "math", "MathJax", "mjx-container"}  # typeset math keeps its braces


def rendered_part(cell: Element) -> Element | None:
    for cls in RENDERED:
        found = cell.find(cls=cls)
        if found is not None:
            return found
    return None


def prose(element: Element) -> str:
    """Text content without code, scripts and typeset math."""
    parts = []
    for child in element.children:
        if isinstance(child, str):
            parts.append(child)
        elif not (child.tag in NO_TEXT_TAGS or child.tag.startswith("mjx-") or child.classes & NOT_PROSE):
            parts.append(prose(child))
    return "".join(parts)


def raw_myst(cell: Element) -> list[str]:
    """The raw MyST left in a rendered markdown cell's prose (code and math left out)."""
    rendered = rendered_part(cell)
    if rendered is None:
        return []
    return sorted({match.group(0).strip() for match in RAW_MYST.finditer(prose(rendered))})


def check_notebook(dom: Element, rel: str, expected_cells: int) -> list[str]:
    cells = dom.find_all(cls="jp-MarkdownCell")
    if len(cells) != expected_cells:
        return [f"{rel}: JupyterLab shows {len(cells)} markdown cells, the notebook has {expected_cells}"]
    problems = []
    for number, cell in enumerate(cells, 1):
        if rendered_part(cell) is None:
            problems.append(f"{rel}: markdown cell {number} is not rendered")
        for raw in raw_myst(cell):
            problems.append(f"{rel}: markdown cell {number} shows raw MyST {raw!r}")
    return problems


def notebooks(paths: list[str], languages: list[str]) -> list[Path]:
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted(p for lang in languages for p in (NOTEBOOKS / lang).glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to open (default: all of --lang)")
    parser.add_argument("--lang", nargs="+", default=["en"], help="editions to open (default: en)")
    parser.add_argument("--jobs", type=int, default=2, help="Chromium processes at a time")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    parser.add_argument("--jupyter", default=str(Path(sys.executable).with_name("jupyter")))
    args = parser.parse_args(argv)

    chromium = shutil.which(args.chromium)
    if chromium is None:
        print(INSTALL_HINT.format(path=args.chromium), file=sys.stderr)
        return 2
    if not Path(args.jupyter).exists() and shutil.which(args.jupyter) is None:
        print(f"JupyterLab not found at {args.jupyter}: pip install 'dldna[colab]'", file=sys.stderr)
        return 2

    paths = notebooks(args.notebooks, args.lang)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dldna-lab-") as scratch:
        root = Path(scratch)
        rels = []
        for path in paths:
            rel = path.relative_to(NOTEBOOKS).as_posix() if path.is_relative_to(NOTEBOOKS) else path.name
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, root / rel)
            rels.append(rel)
        browser = Chromium(chromium, timeout_s=180)
        with JupyterLab(root, args.jupyter) as lab:

            def one(rel: str) -> list[str]:
                html = browser.dump_dom(lab.url(rel), virtual_time_ms=VIRTUAL_TIME_MS)
                lab.shut_down_kernels(rel)
                return check_notebook(parse_html(html), rel, markdown_cells(root / rel))

            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                failures = [problem for problems in pool.map(one, rels) for problem in problems]
    seconds = time.monotonic() - started
    if failures:
        print(f"JupyterLab check: {len(failures)} problem(s) in {len(rels)} notebooks:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"JupyterLab check: {len(rels)} notebooks rendered without raw MyST ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
