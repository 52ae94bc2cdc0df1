"""One small registry class for every "name -> thing" table of the package.

Cross-attention versions, learning-rate schedules, pooling functions, distances, the
ablation's modes and the caption templates are all looked up by name. Each used to be a
bare ``dict`` with its own decorator; :class:`Registry` gives them one behaviour: a name
registered twice is an error (two classes silently shadowing each other is a bug), and
an unknown name raises an error that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "UnknownNameError"]


class UnknownNameError(KeyError, ValueError):
    """A name that is not in a registry (a ``KeyError`` and a ``ValueError``)."""

    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named table filled by a decorator: ``@SCHEDULES.register("cosine")``.

    Args:
        kind: what the entries are, for error messages ("learning-rate schedule").
        error: the exception raised for an unknown name (a subclass of
            :class:`UnknownNameError` lets callers catch their own kind).
        sort_key: orders :meth:`names` (default: registration order).
    """

    def __init__(
        self,
        kind: str,
        error: type[UnknownNameError] = UnknownNameError,
        sort_key: Callable[[str], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.error = error
        self.sort_key = sort_key
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds the decorated object under ``name``."""

        def wrap(obj: T) -> T:
            self.add(name, obj)
            return obj

        return wrap

    def add(self, name: str, obj: T) -> T:
        """Add ``obj`` under ``name``; a name may be registered once."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        existing = self._entries.get(name)
        if existing is not None and existing is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice: {existing!r} and {obj!r}.")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name lists the known ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(
                f"Unknown {self.kind} {name!r}; known: {', '.join(self.names())}."
            ) from None

    __getitem__ = get

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted by ``sort_key`` when one was given."""
        names = list(self._entries)
        return tuple(sorted(names, key=self.sort_key) if self.sort_key else names)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self.names())})"
