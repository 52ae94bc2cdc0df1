"""Build the book from full-profile executions: ``make book-full``.

``execute``: run every notebook with papermill in ``profile="full"`` (a machine with a
GPU and internet) and store the executed copies in ``STORE/<lang>/<name>.ipynb``, each
with its provenance in the notebook metadata (``dldna_execution``: profile, device,
library versions, date, and the hash of the source notebook's code cells).

``store``: the same for notebooks that were already executed (the mirror run of
``scripts/full_mirror.py``, or papermill by hand).

``build``: stage a copy of the book in ``_build/book-full/src``. A page whose stored
execution has the same code hash as its notebook gets the stored outputs (and is
excluded from execution); a page without one, or whose code changed since, is executed
in the smoke profile by Jupyter Book as usual. Each page starts with a note saying which
of the two it shows. The site is written to ``_build/html-full``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger("book_full")

REPO = Path(__file__).resolve().parent.parent
STAGE = REPO / "_build" / "book-full"
KEY = "dldna_execution"
NOTE_TAG = "dldna-execution-note"
BOOK_PATHS = ("_config.yml", "_toc.yml", "book", "notebooks")


def code_hash(notebook: dict) -> str:
    """SHA-256 of the code cells' sources, in order (markdown and outputs do not count)."""
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and NOTE_TAG not in cell.get("metadata", {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            digest.update(source.encode("utf-8") + b"\0")
    return digest.hexdigest()


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, notebook: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def provenance(source: dict, device: str, mirror: bool) -> dict:
    """What a stored execution records about itself."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("dldna", "torch", "torchvision", "transformers", "tokenizers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "profile": "full",
        "device": device,
        "mirror": mirror,  # True: small stand-in models and datasets, not the real ones
        "versions": versions,
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "code_hash": code_hash(source),
    }


def _device_of(executed: dict) -> str:
    """The device the notebook printed in its setup cell (``device=...``), else unknown."""
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            text = text if isinstance(text, str) else "".join(text)
            if "device=" in text:
                return text.split("device=", 1)[1].split()[0]
    return "unknown"


def store(executed_dir: Path, store_dir: Path, lang: str = "en", mirror: bool = False) -> list[str]:
    """Copy executed notebooks into ``store_dir/lang`` with their provenance."""
    stored = []
    for path in sorted(executed_dir.glob("*.ipynb")):
        source_path = REPO / "notebooks" / lang / path.name
        if not source_path.is_file():
            continue
        executed = _read(path)
        if any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", [])):
            logger.warning("%s ended in an error; not stored", path.name)
            continue
        executed["metadata"][KEY] = provenance(_read(source_path), _device_of(executed), mirror)
        _write(store_dir / lang / path.name, executed)
        stored.append(path.name)
    return stored


def execute(store_dir: Path, lang: str = "en", parameters: dict | None = None) -> list[str]:
    """Run each notebook of ``notebooks/lang`` in the full profile and store it."""
    import tempfile

    import papermill

    with tempfile.TemporaryDirectory(prefix="dldna-book-full-") as tmp:
        for source in sorted((REPO / "notebooks" / lang).glob("*.ipynb")):
            logger.info("executing %s (profile=full)", source.name)
            papermill.execute_notebook(
                str(source), str(Path(tmp) / source.name), parameters={"profile": "full", **(parameters or {})},
                kernel_name="python3", cwd=str(source.parent), progress_bar=False,
            )
        return store(Path(tmp), store_dir, lang, mirror=False)


def _note(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {"tags": [NOTE_TAG]}, "source": text}


def _full_note(meta: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if k != "dldna" and v)
    what = (
        "small stand-in models and datasets in the real formats (a test of the full code path)"
        if meta.get("mirror") else "the pretrained models and the real datasets"
    )
    return (
        ":::{note}\nThe outputs on this page come from an execution in the **full** profile "
        f"({what}) on {meta['device']}, {meta['date_utc']} UTC, with {versions}.\n:::"
    )


def _smoke_note(reason: str) -> str:
    return (
        ":::{note}\nThis page was executed in the **smoke** profile (tiny models, random "
        f"weights, synthetic data): {reason}\n:::"
    )


def stage(store_dir: Path, stage_dir: Path = STAGE / "src") -> dict[str, str]:
    """Copy the book into ``stage_dir``; use stored full executions where the code matches.

    Returns ``{notebook path: "full" | "smoke: <reason>"}``.
    """
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    for name in BOOK_PATHS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, stage_dir / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            shutil.copy2(source, stage_dir / name)
    decisions: dict[str, str] = {}
    excluded = []
    for path in sorted((stage_dir / "notebooks").glob("*/*.ipynb")):
        rel = path.relative_to(stage_dir).as_posix()
        source = _read(path)
        stored_path = store_dir / path.parent.name / path.name
        stored = _read(stored_path) if stored_path.is_file() else None
        meta = stored["metadata"].get(KEY) if stored else None
        if meta is not None and meta["code_hash"] == code_hash(source):
            page = stored
            page["cells"].insert(0, _note(_full_note(meta)))
            excluded.append(rel)
            decisions[rel] = "full"
        else:
            reason = (
                "its code changed since the stored full-profile execution."
                if meta is not None else "there is no stored full-profile execution of it."
            )
            page = source
            page["cells"].insert(0, _note(_smoke_note(reason)))
            decisions[rel] = f"smoke: {reason}"
        _write(path, page)
    config = stage_dir / "_config.yml"
    extra = "\n".join(f"    - {json.dumps(rel)}" for rel in excluded)
    jupyter_cache = json.dumps(str(REPO / "_build" / ".jupyter_cache"))  # reuse the smoke executions
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "execute:\n", f"execute:\n  cache: {jupyter_cache}\n  exclude_patterns:\n{extra or '    []'}\n", 1
        ),
        encoding="utf-8",
    )
    (stage_dir / "execution.json").write_text(json.dumps(decisions, indent=1), encoding="utf-8")
    return decisions


def build(store_dir: Path, strict: bool = False) -> Path:
    """Stage and build; the site goes to ``_build/html-full``."""
    decisions = stage(store_dir)
    for page, what in decisions.items():
        logger.info("%s: %s", page, what)
    stage_dir = STAGE / "src"
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(stage_dir), "--keep-going"]
    if strict:
        command[3:3] = ["-W", "-n"]
    env = dict(os.environ, DLDNA_PROFILE="smoke")
    subprocess.run(command, check=True, env=env)
    target = REPO / "_build" / "html-full"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(stage_dir / "_build" / "html", target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("execute", "store", "build"))
    parser.add_argument("--store", type=Path, default=REPO / "book" / "executed", help="stored executions")
    parser.add_argument("--executed", type=Path, help="store: folder of executed notebooks")
    parser.add_argument("--mirror", action="store_true", help="store: the executions ran against mirrors")
    parser.add_argument("--strict", action="store_true", help="build: warnings are errors")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "execute":
        logger.info("stored: %s", execute(args.store))
    elif args.command == "store":
        if args.executed is None:
            parser.error("store needs --executed DIR")
        logger.info("stored: %s", store(args.executed, args.store, mirror=args.mirror))
    else:
        logger.info("site: %s", build(args.store, strict=args.strict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
