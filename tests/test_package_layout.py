"""The package keeps the boundaries its README states."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dldna"
CHAPTER = PACKAGE / "chapter_10"
#: Reading these attributes of a runtime is the profile logic that belongs to runtime.py/loaders.py.
PROFILE_ATTRIBUTES = {"profile", "smoke", "synthetic"}
#: Names a Runtime goes by in the package.
RUNTIME_NAMES = {"runtime", "run", "rt", "data_runtime"}


def profile_reads(source: str) -> list[str]:
    """``name.attr`` expressions of ``source`` that read a runtime's profile."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PROFILE_ATTRIBUTES:
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in RUNTIME_NAMES:
                found.append(f"line {node.lineno}: {name}.{node.attr}")
    return found


def test_the_detector_finds_a_profile_read():
    assert profile_reads("def f(runtime):\n    return runtime.profile == 'smoke'\n") == ["line 2: runtime.profile"]
    assert profile_reads("x = self.runtime.synthetic\n") == ["line 1: runtime.synthetic"]
    assert profile_reads("x = data.synthetic\n") == []  # a dataset's own attribute


@pytest.mark.parametrize("path", sorted(CHAPTER.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_chapter_code_does_not_read_the_profile(path):
    reads = profile_reads(path.read_text(encoding="utf-8"))
    assert not reads, f"{path.relative_to(PACKAGE)} reads the profile ({reads}); take sizes from loaders.profile_sizes"


def test_loaders_do_not_import_chapter_code():
    source = (PACKAGE / "loaders.py").read_text(encoding="utf-8")
    imports = re.findall(r"^\s*(?:from|import)\s+(dldna\.chapter_10\S*)", source, flags=re.M)
    assert imports == []


#: The one rename that is not a write: a finished download, checked for size, moved into place.
PUBLISHED_DOWNLOAD = "os.replace(part, archive)"


def test_one_atomic_write():
    """Every write that renames a temporary file goes through dldna.atomic."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "atomic.py"
        and "os.replace(" in path.read_text(encoding="utf-8").replace(PUBLISHED_DOWNLOAD, "")
    ]
    assert offenders == []
