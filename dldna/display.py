"""Small display helpers for the notebooks."""

from __future__ import annotations

import inspect
import textwrap


class SourceListing:
    """An object's source code, shown as a highlighted code block in Jupyter and the book.

    Listings in the chapter come from the package itself, so the text can never drift
    from the code that runs.
    """

    def __init__(self, obj: object) -> None:
        self.name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
        self.module = getattr(inspect.getmodule(obj), "__name__", "")
        self.source = textwrap.dedent(inspect.getsource(obj)).rstrip()

    def _repr_markdown_(self) -> str:
        return f"`{self.module}.{self.name}`\n\n```python\n{self.source}\n```"

    def __str__(self) -> str:
        return self.source


def show_source(obj: object) -> SourceListing:
    """Return a listing of ``obj`` (a class or function) that notebooks display."""
    return SourceListing(obj)
