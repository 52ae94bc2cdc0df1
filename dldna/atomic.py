"""Atomic file writes: a reader, or a run killed half-way, never sees half a file.

Everything the package writes that a later run trusts (checkpoints, result files, the
saved split, the caption file of generated data, study tables) goes through
:func:`atomic_write`: the content is written to a temporary file in the same folder and
renamed over the target, which POSIX and Windows do in one step.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it to ``path``.

    A failure leaves any previous ``path`` untouched and removes the temporary file. A
    full disk is reported with the file's name instead of a library's internal message.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"No space left on the device while writing {path}") from exc
        raise
    except RuntimeError as exc:  # torch.save reports a full disk as a RuntimeError
        if "enforce fail" in str(exc) or "No space" in str(exc):
            raise OSError(
                errno.EIO, f"Could not write {path} (is the disk full or the folder read-only?): {exc}"
            ) from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], payload: Any, indent: int | None = 1) -> Path:
    """JSON with finite numbers only (``allow_nan=False``): NaN and inf are not JSON."""
    text = json.dumps(payload, indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")
