"""Registry of cross-attention versions, filled by the ``@register`` decorator.

The original chapter picked a version with a long ``if version == 'v0' ... elif`` chain.
Here each version file registers its class with one decorator line into a
:class:`dldna.registry.Registry`, and :func:`get_cross_attention` looks the name up, so
adding a version touches one file only.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from dldna.registry import Registry, UnknownNameError

logger = logging.getLogger(__name__)

__all__ = [
    "REGISTRY",
    "VERSIONS",
    "UnknownVersionError",
    "available_versions",
    "get_cross_attention",
    "register",
    "version_key",
]

#: The 17 versions of the chapter's ablation study, in the order the study runs them.
VERSIONS: tuple[str, ...] = (
    "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
    "v10_1", "v10_2", "v10_3", "v10_4", "v10_5", "v10_6", "v11",
)  # fmt: skip

_NAME = re.compile(r"^v(\d+)(?:_(\d+))?$")


class UnknownVersionError(UnknownNameError):
    """A version name that is not registered.

    Subclasses both ``KeyError`` (a failed lookup) and ``ValueError`` (a bad argument,
    what the original code raised), so either ``except`` clause catches it.
    """


def version_key(name: str) -> tuple[int, int]:
    """Natural sort key: ``v9 < v10_1 < v10_6 < v11`` (plain string order puts v10 first)."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"Version names look like 'v9' or 'v10_3', got {name!r}.")
    major, minor = match.groups()
    return int(major), int(minor or 0)


#: Version name -> ``CrossAttention`` class; iterates in natural order (``v9 < v10_1``).
REGISTRY: Registry[type[nn.Module]] = Registry(
    "cross-attention version", error=UnknownVersionError, sort_key=version_key
)


def available_versions() -> tuple[str, ...]:
    """Registered version names in natural order."""
    return REGISTRY.names()


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: ``@register("v10_3")`` adds the class under that name.

    It also sets the class attribute ``version = name``, so a model (and a checkpoint
    written from it) always knows which version it is. A name taken by another class
    is an error.
    """
    version_key(name)  # validates the name

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        REGISTRY.add(name, cls)
        cls.version = name
        logger.debug("registered cross-attention %s -> %s", name, cls.__module__)
        return cls

    return decorator


def get_cross_attention(version: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build the ``CrossAttention`` of ``version`` with keyword arguments ``config``.

    Example: ``get_cross_attention("v9", {"dim": 256, "num_heads": 8})``.

    Raises:
        UnknownVersionError: ``version`` is not registered (the message lists them).
        TypeError: ``config`` is not a dict or names an argument the version lacks.
    """
    cls = REGISTRY.get(version)
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of constructor arguments, got {type(config).__name__}.")
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self"]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(config) - set(accepted))
    if unknown and not takes_any:
        raise TypeError(f"{version} does not accept {unknown}; its arguments are {accepted}.")
    return cls(**config)
