"""Notebook parameters, checked where they enter.

Every notebook starts with a ``parameters`` cell that papermill (``-p epochs 3``) or a
reader may change. A bad value used to surface cells later, deep inside a library
(``epochs = 0`` silently became the default through ``epochs or 5``; ``seed = "abc"``
failed inside NumPy). :func:`check_params` checks all of them in the first cell after
the parameters and raises one :class:`ParameterError` that lists, for each bad value,
the parameter, the value and what is allowed::

    check_params(
        epochs=(epochs, optional(positive_int)),
        lr=(lr, optional(positive_number)),
        text_pooling=(text_pooling, choice("mean", "cls")),
    )

A rule is a :class:`Rule`: a sentence that says what is allowed, and a test.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ParameterError",
    "Rule",
    "any_string",
    "check_params",
    "choice",
    "integer",
    "list_of",
    "non_empty_string",
    "non_negative_int",
    "non_negative_number",
    "number",
    "optional",
    "path_like",
    "positive_int",
    "positive_number",
]


class ParameterError(ValueError):
    """One or more parameters have values that are not allowed; the message lists them."""


@dataclass(frozen=True)
class Rule:
    """What a parameter may be: ``allowed`` says it in words, ``accepts`` tests a value.

    ``item`` is the rule of each element for a list rule, so that an error can name the
    first wrong element of a long list.
    """

    allowed: str
    accepts: Callable[[Any], bool]
    item: Rule | None = None

    def __call__(self, value: Any) -> bool:
        return self.accepts(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int | None = None, maximum: int | None = None) -> Rule:
    """An ``int`` (not a bool, not a float such as ``3.0``) in ``[minimum, maximum]``."""
    if minimum is not None and maximum is not None:
        allowed = f"an integer from {minimum} to {maximum}"
    elif minimum == 1:
        allowed = "a positive integer (1, 2, ...)"
    elif minimum == 0:
        allowed = "a non-negative integer (0, 1, ...)"
    elif minimum is not None:
        allowed = f"an integer >= {minimum}"
    elif maximum is not None:
        allowed = f"an integer <= {maximum}"
    else:
        allowed = "an integer"

    def accepts(value: Any) -> bool:
        return (
            _is_int(value)
            and (minimum is None or value >= minimum)
            and (maximum is None or value <= maximum)
        )

    return Rule(allowed, accepts)


def number(
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> Rule:
    """A finite real number (int or float, not NaN or infinity) within the given bounds."""
    bounds = [
        f"> {above:g}" if above is not None else "",
        f">= {at_least:g}" if at_least is not None else "",
        f"< {below:g}" if below is not None else "",
        f"<= {at_most:g}" if at_most is not None else "",
    ]
    words = " and ".join(b for b in bounds if b)
    allowed = f"a finite number{' ' + words if words else ''}"

    def accepts(value: Any) -> bool:
        return (
            _is_real(value)
            and (above is None or value > above)
            and (at_least is None or value >= at_least)
            and (below is None or value < below)
            and (at_most is None or value <= at_most)
        )

    return Rule(allowed, accepts)


def choice(*options: Any) -> Rule:
    """One of ``options`` (compared with ``==``)."""
    listed = ", ".join(repr(o) for o in options)
    return Rule(f"one of {listed}", lambda value: any(value == o for o in options))


def optional(rule: Rule, meaning: str = "the default") -> Rule:
    """``rule``, or ``None`` (which stands for ``meaning``)."""
    return Rule(
        f"{rule.allowed}, or None for {meaning}", lambda value: value is None or rule(value), rule.item
    )


def list_of(rule: Rule, min_length: int = 1) -> Rule:
    """A list or tuple of at least ``min_length`` items, each allowed by ``rule``."""
    size = "a non-empty list" if min_length == 1 else f"a list of at least {min_length} items"
    allowed = f"{size}, each item {rule.allowed}"

    def accepts(value: Any) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) >= min_length
            and all(rule(item) for item in value)
        )

    return Rule(allowed, accepts, item=rule)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


#: Rules with names that no notebook parameter uses (importing one must not shadow one).
non_empty_string = Rule("a non-empty string", _is_text)
any_string = Rule("a string", lambda value: isinstance(value, str))
path_like = Rule(
    "a path (a non-empty string or pathlib.Path)",
    lambda value: isinstance(value, os.PathLike) or _is_text(value),
)
positive_int = integer(minimum=1)
non_negative_int = integer(minimum=0)
positive_number = number(above=0)
non_negative_number = number(at_least=0)


def _bad(name: str, value: Any, rule: Rule, extra: str = "") -> str:
    return f"{name} = {value!r} is not allowed: use {rule.allowed}{extra}."


def problems(specs: dict[str, tuple[Any, Rule]]) -> list[str]:
    """One sentence per parameter whose value its rule does not accept."""
    found = []
    for name, (value, rule) in specs.items():
        if not rule(value):
            wrong_item = _first_wrong_item(value, rule)
            found.append(_bad(name, value, rule, wrong_item))
    return found


def _first_wrong_item(value: Any, rule: Rule) -> str:
    """For a list, name the first element that is wrong (the list itself may be long)."""
    if rule.item is None or not isinstance(value, (list, tuple)):
        return ""
    for item in value:
        if not rule.item(item):
            return f"; {item!r} is not {rule.item.allowed}"
    return ""


def check_params(**specs: tuple[Any, Rule]) -> None:
    """Check ``name=(value, rule)`` pairs; raise one :class:`ParameterError` for all bad ones.

    For example ``check_params(epochs=(0, positive_int))`` raises "Parameter epochs = 0 is
    not allowed: use a positive integer (1, 2, ...)."
    """
    for name, spec in specs.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Rule)):
            raise TypeError(f"check_params({name}=...) needs a (value, Rule) pair, got {spec!r}.")
    found = problems(specs)
    if len(found) == 1:
        raise ParameterError(f"Parameter {found[0]}")
    if found:
        raise ParameterError("Parameters not allowed:\n  " + "\n  ".join(found))
