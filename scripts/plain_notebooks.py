#!/usr/bin/env python3
"""Write plain-Jupyter-Markdown copies of the notebooks, for Colab and the .ipynb download.

The notebooks' Markdown uses MyST, which only the book's site (and JupyterLab with the
``jupyterlab-myst`` extension, in the ``book`` extra) renders: ``{cite}`key``` roles,
``:::{note}`` admonitions, ``:::{dropdown} Solution`` blocks, ``{mermaid}`` diagrams.
Colab can install no extension, so the site's Colab button and its ``.ipynb`` download
point at a copy in which

* a citation is an author-year link to a reference list appended at the end, built from
  ``book/references.bib``;
* an admonition or dropdown is a quoted block headed by its title ("> **Solution**");
* a ``{mermaid}`` directive is a fenced ``mermaid`` code block (rendered by JupyterLab 4.1+,
  shown as text elsewhere).

Code cells, their metadata and the notebook metadata are copied unchanged, so a copy runs
exactly like its source. The copies are generated, never edited: ``notebooks/<lang>/X.ipynb``
becomes ``colab/<lang>/X.ipynb``, and ``tests/test_plain_notebooks.py`` fails when a copy
is out of date or shows raw MyST.

Usage: python scripts/plain_notebooks.py          # (re)write every copy, drop stale ones
       python scripts/plain_notebooks.py --check  # exit 1 if a copy is missing or stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "notebooks"
COPIES = ROOT / "colab"
BIBLIOGRAPHY = ROOT / "book" / "references.bib"

CITE = re.compile(r"\{cite(?::(?P<kind>[a-z]+))?\}`(?P<keys>[^`]+)`")
DIRECTIVE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>:{3,}|`{3,})\{(?P<name>[\w-]+)\}\s*(?P<arg>.*)$")
CODE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?!\{)")
OPTION = re.compile(r"^\s*:[\w-]+:")
# What must never be left in a copy: a MyST role, or a directive fence.
RAW_MYST = re.compile(r"(?<![`\w])\{[a-z][\w:-]*\}`(?!`)|^\s*(?::{3,}|`{3,})\{", re.MULTILINE)

TITLES = {"note": "Note", "tip": "Tip", "warning": "Warning", "important": "Important",
          "caution": "Caution", "hint": "Hint", "seealso": "See also", "attention": "Attention",
          "danger": "Danger", "error": "Error", "dropdown": "Details", "admonition": "Note"}
CODE_DIRECTIVES = {"mermaid": "mermaid", "code": "", "code-block": "", "code-cell": "python"}
LATEX = {r"\'a": "á", r"\'e": "é", r"\'o": "ó", r"\'i": "í", r"\"o": "ö", r"\"a": "ä",
         r"\"u": "ü", r"\v{s}": "š", r"\v{c}": "č", r"\&": "&", r"\`e": "è", r"\^o": "ô"}


@dataclass(frozen=True)
class Reference:
    key: str
    authors: list[str]  # "Last, First" as in the .bib file
    year: str
    title: str
    venue: str

    def surnames(self) -> str:
        last = [a.split(",")[0].strip() for a in self.authors if a.strip() != "others"]
        if len(last) == 1 and len(self.authors) == 1:
            return last[0]
        if len(last) == 2 and len(self.authors) == 2:
            return f"{last[0]} and {last[1]}"
        return f"{last[0]} et al."

    def entry(self) -> str:
        people = [" ".join(reversed([part.strip() for part in a.split(",", 1)]))
                  for a in self.authors if a.strip() != "others"]
        if len(people) > 6 or len(people) < len(self.authors):
            people = people[:3] + ["et al."]
        names = ", ".join(people)
        venue = f" {self.venue}." if self.venue else ""
        return f'<a id="ref-{self.key}"></a>{names} ({self.year}). *{self.title}*.{venue}'


def _latex_to_text(value: str) -> str:
    for latex, text in LATEX.items():
        value = value.replace("{" + latex + "}", text).replace(latex, text)
    return re.sub(r"\s+", " ", value.replace("{", "").replace("}", "")).strip()


def read_bibliography(path: Path = BIBLIOGRAPHY) -> dict[str, Reference]:
    """The entries of a .bib file (the fields the reference list shows), by key."""
    text = path.read_text(encoding="utf-8")
    references = {}
    for match in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,", text):
        key, position, depth, fields = match.group(1), match.end(), 1, {}
        body_start = position
        while depth and position < len(text):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            position += 1
        body = text[body_start:position - 1]
        for field in re.finditer(r"(\w+)\s*=\s*", body):
            start, level, end = field.end(), 0, field.end()
            while end < len(body) and (level or body[end] not in ",\n"):
                level += {"{": 1, "}": -1}.get(body[end], 0)
                end += 1
            fields[field.group(1).lower()] = body[start:end].strip().strip(",")
        authors = _latex_to_text(fields.get("author", "")).split(" and ")
        venue = fields.get("booktitle") or fields.get("journal") or fields.get("publisher", "")
        references[key] = Reference(key, authors, _latex_to_text(fields.get("year", "n.d.")),
                                    _latex_to_text(fields.get("title", key)), _latex_to_text(venue))
    return references


class Converter:
    """Turns the MyST of one notebook's Markdown cells into plain Jupyter Markdown."""

    def __init__(self, references: dict[str, Reference], source: Path) -> None:
        self.references = references
        self.source = source
        self.cited: list[str] = []  # in order of first citation

    def cite(self, match: re.Match) -> str:
        links = []
        for key in (k.strip() for k in match.group("keys").split(",")):
            if key not in self.references:
                raise KeyError(f"{self.source}: {{cite}}`{key}` is not in {BIBLIOGRAPHY.name}")
            if key not in self.cited:
                self.cited.append(key)
            ref = self.references[key]
            who = ref.surnames()
            links.append(f"[{who} ({ref.year})](#ref-{key})" if match.group("kind") == "t"
                         else f"[{who}, {ref.year}](#ref-{key})")
        return "; ".join(links) if match.group("kind") == "t" else f"({'; '.join(links)})"

    def markdown(self, text: str) -> str:
        out: list[str] = []
        # (fence that closes it, "quote" or "code", what to write for the closing line)
        stack: list[tuple[str, str, str | None]] = []
        for line in text.split("\n"):
            prefix = "".join("> " for _, kind, _ in stack if kind == "quote")
            top = stack[-1] if stack else None
            if top and top[1] == "code":
                if line.strip() == top[0]:
                    stack.pop()
                    line = top[2] if top[2] is not None else line
                out.append((prefix + line).rstrip())
                continue
            if top and line.strip() == top[0]:
                stack.pop()
                # a blank line ends the quote (the next line would otherwise continue it)
                out.append("".join("> " for _, kind, _ in stack if kind == "quote").rstrip())
                continue
            opened = DIRECTIVE_OPEN.match(line)
            if opened:
                name, arg, fence = opened["name"], opened["arg"].strip(), opened["fence"]
                if name in CODE_DIRECTIVES:
                    out.append(f"{prefix}```{CODE_DIRECTIVES[name] or arg}".rstrip())
                    stack.append((fence, "code", opened["indent"] + "```"))
                    continue
                title = arg if name in ("dropdown", "admonition") and arg else TITLES.get(name, name.title())
                if arg and name not in ("dropdown", "admonition"):
                    title = f"{title}: {arg}"
                out.append(f"{prefix}> **{self._inline(title)}**")
                out.append(f"{prefix}>")
                stack.append((fence, "quote", None))
                continue
            if stack and OPTION.match(line) and out and out[-1].endswith(">"):
                continue  # a directive option such as :open:
            code = CODE_OPEN.match(line)
            if code:
                stack.append((code["fence"], "code", None))
            out.append((prefix + self._inline(line) if not code else prefix + line).rstrip())
        if stack:
            raise ValueError(f"{self.source}: unclosed directive or code fence {stack[-1][0]!r}")
        return "\n".join(out)

    def _inline(self, line: str) -> str:
        return CITE.sub(self.cite, line)

    def reference_list(self) -> str:
        items = [f"* {self.references[key].entry()}" for key in self.cited]
        return "## References\n\n" + "\n".join(items)


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def render(source: Path, references: dict[str, Reference] | None = None) -> str:
    """The plain copy of ``source`` as the text of an .ipynb file."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    converter = Converter(references if references is not None else read_bibliography(), source)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = _lines(converter.markdown(text))
    if converter.cited:
        notebook["cells"].append({"cell_type": "markdown", "id": "plain-references",
                                  "metadata": {}, "source": _lines(converter.reference_list())})
    relative = source.resolve().relative_to(ROOT).as_posix()
    notebook["metadata"]["dldna"] = {
        "generated_from": relative,
        "generated_by": "scripts/plain_notebooks.py (do not edit: edit the source and rerun)",
    }
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def copy_path(source: Path) -> Path:
    return COPIES / source.parent.name / source.name


def sources() -> list[Path]:
    return sorted(SOURCES.glob("*/*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale copies, write nothing")
    args = parser.parse_args(argv)
    references = read_bibliography()
    stale = []
    wanted = set()
    for source in sources():
        target = copy_path(source)
        wanted.add(target)
        text = render(source, references)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            stale.append(target)
            if not args.check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    extra = [p for p in sorted(COPIES.glob("*/*.ipynb")) if p not in wanted]
    for path in extra:
        stale.append(path)
        if not args.check:
            path.unlink()
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path.relative_to(ROOT)}")
    if args.check and stale:
        print("run `python scripts/plain_notebooks.py` to regenerate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
