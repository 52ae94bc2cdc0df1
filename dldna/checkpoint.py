"""One checkpoint format for every trained model of the package.

A checkpoint is a plain dictionary saved with ``torch.save``: a ``format`` tag naming
who wrote it, the model's build recipe (``config``), optionally the tokenizer it was
trained with, the weights (``state_dict``) and whatever else the writer records
(epoch, metrics, version). Three rules hold for all of them:

* **written atomically** (:func:`dldna.atomic.atomic_write`): a run killed while saving
  leaves the previous file intact;
* **read with** ``torch.load(weights_only=True)``: a checkpoint can hold tensors and
  plain Python values only, never code, so a downloaded file cannot run anything;
* **loaded with** ``strict=True``: weights of another architecture are refused instead of
  silently leaving layers at their random initialisation.

:func:`file_record` gives a file's size and SHA-256, so a result that points to a
checkpoint can later tell whether that file is still the one it was written with.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dldna.atomic import atomic_write

__all__ = [
    "CheckpointError",
    "file_record",
    "load_into",
    "plain",
    "read",
    "save",
    "tokenizer_from_record",
    "tokenizer_record",
    "verify_file",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked (foreign, broken, or of another model)."""


def plain(value: Any) -> Any:
    """Dataclasses and tuples to plain dicts and lists (tensors kept), which ``weights_only=True`` accepts."""
    if isinstance(value, torch.Tensor):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def save(path: str | os.PathLike[str], fmt: str, model: nn.Module, **fields: Any) -> Path:
    """Save ``model``'s weights with ``fields`` under the format tag ``fmt``, atomically."""
    payload = {key: plain(value) for key, value in fields.items()}
    payload["format"] = fmt
    payload["state_dict"] = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read(path: str | os.PathLike[str], fmt: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """Read a checkpoint of format ``fmt`` (weights only) and check that it has ``required`` keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign pickle, a truncated or corrupt file
        raise CheckpointError(
            f"Cannot read {path} as a weights-only checkpoint ({type(exc).__name__}: {exc}). "
            "The file is damaged or was not written by this package; train the model again."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a {fmt!r} checkpoint (it holds {found!r}).")
    missing = [key for key in ("state_dict", *required) if key not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}.")
    return payload


def load_into(model: nn.Module, payload: dict[str, Any], path: str | os.PathLike[str] = "checkpoint") -> None:
    """Load ``payload["state_dict"]`` into ``model`` strictly, naming the file on a mismatch."""
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit a {type(model).__name__}: {exc}") from None


def tokenizer_record(tokenizer: Any) -> dict[str, Any]:
    """A fast tokenizer as plain data (its ``tokenizer.json`` text and special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"Need a fast (tokenizers-backed) tokenizer to save, got {type(tokenizer).__name__}.")
    return {"json": backend.to_str(), "special_tokens": dict(tokenizer.special_tokens_map)}


def tokenizer_from_record(record: dict[str, Any]) -> Any:
    """The ``BertTokenizerFast`` a :func:`tokenizer_record` describes."""
    import transformers
    from tokenizers import Tokenizer

    return transformers.BertTokenizerFast(
        tokenizer_object=Tokenizer.from_str(record["json"]), **record.get("special_tokens", {})
    )


def file_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Size in bytes and SHA-256 of a file: what a result records about its checkpoint."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def verify_file(path: str | os.PathLike[str], record: dict[str, Any] | None) -> str | None:
    """``None`` if ``path`` still matches ``record`` (see :func:`file_record`), else the reason."""
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing"
    if not isinstance(record, dict) or "sha256" not in record or "bytes" not in record:
        return f"no size and hash were recorded for {path}"
    size = path.stat().st_size
    if size != record["bytes"]:
        return f"{path} has {size} bytes, {record['bytes']} were written"
    if file_record(path)["sha256"] != record["sha256"]:
        return f"{path} has changed since it was written (SHA-256 differs)"
    return None
