"""One reader for Flickr8k and for the synthetic shapes that copy its layout.

Expected layout (what the public Flickr8k zip and :mod:`dldna.data.shapes` both write)::

    DIR/Images/<name>.jpg
    DIR/captions.txt          # first line "image,caption", then "<name>.jpg,<caption>"

Two errors of the original chapter's loader are fixed here:

1. The header line ``image,caption`` is a header, not a caption of an image called
   ``image`` (the original logged "Image file not found: .../Images/image" every epoch).
2. Train/validation/test are split by *image*, with a seed, saved to disk and reused.
   Splitting the caption rows (five per image) put the same picture on both sides.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from dldna import runtime
from dldna.atomic import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

FLICKR8K_URL = "https://github.com/awsaf49/flickr-dataset/releases/download/v1.0/flickr8k.zip"
FLICKR8K_HOST = "github.com"
FLICKR8K_ZIP_BYTES = 1_112_971_163
FLICKR8K_IMAGES = 8_091
FLICKR8K_CAPTIONS = 40_455
CAPTION_HEADER = ("image", "caption")
SPLIT_NAMES = ("train", "val", "test")

_IMAGE_NAME = re.compile(r"^[^/\\]+\.(jpe?g|png)$", re.IGNORECASE)
_MISSING_SHOWN = 5  # how many missing file names a warning lists


def layout_help(root: str | os.PathLike[str] = "DIR") -> str:
    """The expected folder layout and the two ways to get data, for error messages."""
    return (
        f"Expected a caption dataset in Flickr8k's layout:\n"
        f"    {root}/Images/*.jpg\n"
        f"    {root}/captions.txt   (first line 'image,caption', then one "
        "'<image>.jpg,<caption>' row per caption)\n"
        "Get one of two ways:\n"
        "  * real Flickr8k (about 1.1 GB, needs internet): "
        "from dldna.data import download_flickr8k; download_flickr8k('data/flickr8k')\n"
        "  * synthetic captioned shapes (offline, seconds): "
        f"python -m dldna.data.shapes --out {root} --images N"
    )


class DatasetLayoutError(FileNotFoundError):
    """The data folder does not look like ``DIR/Images`` + ``DIR/captions.txt``."""


class CaptionFileError(ValueError):
    """A row of the caption file cannot be read; the message names the file and line."""


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded."""


# ----------------------------------------------------------------------- caption file


def _parse_caption(rest: str) -> str:
    """The caption part of a row: raw text, or the value of one CSV-quoted field."""
    if rest.startswith('"'):
        fields = next(csv.reader([rest]))
        if len(fields) == 1:
            return fields[0].strip()
    return rest.strip()


#: A row of Flickr8k's original ``Flickr8k.token.txt``: ``<image>.jpg#<k><TAB><caption>``.
_TOKEN_ROW = re.compile(r"^(?P<name>[^\t#,]+)#\d+\t(?P<caption>.*)$")


def _not_utf8(path: Path) -> CaptionFileError:
    """The error for a caption file that is not UTF-8: file, line and the first bad byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # decoded whole, the offset is the file's
        line_no = data.count(b"\n", 0, exc.start) + 1
        return CaptionFileError(
            f"{path}, line {line_no}: not UTF-8 text (byte {data[exc.start:exc.start + 1]!r} at "
            f"offset {exc.start}: {exc.reason}). Caption files are read as UTF-8; convert this "
            f"one first, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}"
        )
    return CaptionFileError(f"{path}: not UTF-8 text.")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped line)`` of every non-blank line of a UTF-8 text file."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return [(n, line) for n, raw in enumerate(f, start=1) if (line := raw.strip())]
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


def _token_format_help(path: Path) -> str:
    target = path.with_name("captions.txt" if path.name != "captions.txt" else "captions_converted.txt")
    return (
        "this is the format of Flickr8k's original Flickr8k.token.txt ('<image>.jpg#<n><TAB><caption>'), "
        "not captions.txt's ('image,caption' header, then '<image>.jpg,<caption>'). Use the captions.txt "
        "that comes with the Flickr8k download (download_flickr8k), or convert this file once: "
        f"from dldna.data.flickr8k import convert_token_file; convert_token_file({str(path)!r}, {str(target)!r})"
    )


def read_captions(caption_file: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read ``(image name, caption)`` rows; the ``image,caption`` header is skipped.

    Commas inside a caption are kept: a row is split at its first comma only, and a
    CSV-quoted caption (``name.jpg,"a dog, running"``) is unquoted. Blank lines are
    skipped. A malformed row raises :class:`CaptionFileError` with its line number; a file
    that is not UTF-8, or one in the original ``Flickr8k.token.txt`` format, says so.
    """
    path = Path(caption_file)
    if not path.is_file():
        raise DatasetLayoutError(f"Caption file {path} not found.\n{layout_help(path.parent)}")
    pairs: list[tuple[str, str]] = []
    seen_content = False
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: tolerate a byte-order mark
            for line_no, raw in enumerate(f, start=1):
                line = raw.strip()
                if not line:
                    continue
                first_content, seen_content = not seen_content, True
                if first_content and tuple(p.strip().lower() for p in line.split(",")) == CAPTION_HEADER:
                    continue
                name, comma, rest = line.partition(",")
                name = name.strip()
                caption = _parse_caption(rest.strip()) if comma else ""
                problem = None
                if not comma:
                    problem = "no comma between image name and caption"
                elif not _IMAGE_NAME.match(name):
                    problem = f"first field {name!r} is not an image file name (.jpg, .jpeg or .png)"
                elif not caption:
                    problem = "empty caption"
                if problem and _TOKEN_ROW.match(line):  # checked only for bad rows
                    raise CaptionFileError(f"{path}, line {line_no}: {_token_format_help(path)}")
                if problem:
                    raise CaptionFileError(
                        f"{path}, line {line_no}: {problem}. Expected '<image>.jpg,<caption>' "
                        f"(got {line[:80]!r})."
                    )
                pairs.append((name, caption))
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    return pairs


def convert_token_file(
    token_file: str | os.PathLike[str], captions_file: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write Flickr8k's original ``Flickr8k.token.txt`` as a ``captions.txt`` this reader reads.

    ``<image>.jpg#<n><TAB><caption>`` rows become ``<image>.jpg,<caption>`` CSV rows under an
    ``image,caption`` header. Rows whose name is not an image file (the original file lists
    a few as ``<name>.jpg.1``, which exist in no download) are skipped with a warning. An
    existing ``captions_file`` is replaced only with ``overwrite=True``.
    """
    source, target = Path(token_file), Path(captions_file)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
    rows, skipped = [], []
    for line_no, line in _read_lines(source):
        match = _TOKEN_ROW.match(line)
        if match is None:
            raise CaptionFileError(
                f"{source}, line {line_no}: not a Flickr8k.token.txt row '<image>.jpg#<n><TAB><caption>' "
                f"(got {line[:80]!r})."
            )
        name, caption = match["name"].strip(), match["caption"].strip()
        if _IMAGE_NAME.match(name) and caption:
            rows.append((name, caption))
        else:
            skipped.append(line_no)
    if skipped:
        logger.warning("%s: skipped %d rows without an image file name or caption (lines %s).",
                       source, len(skipped), ", ".join(map(str, skipped[:_MISSING_SHOWN])))  # fmt: skip
    out = io.StringIO()
    out.write(",".join(CAPTION_HEADER) + "\n")
    csv.writer(out, lineterminator="\n").writerows(rows)  # quotes captions with commas
    atomic_write_text(target, out.getvalue())
    logger.info("Wrote %d captions from %s to %s.", len(rows), source, target)
    return target


# --------------------------------------------------------------------------- splits


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test) that sum to 1, got {tuple(fractions)}."
        )
    return (float(fractions[0]), float(fractions[1]), float(fractions[2]))


def image_level_split(
    image_names: Iterable[str],
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> dict[str, list[str]]:
    """Split unique image names into ``train``/``val``/``test`` (each list sorted).

    Each name's place comes from a hash of ``(seed, name)``, so the split does not depend
    on the order of ``image_names``, on the Python version, or on global random state.
    """
    train_f, val_f, test_f = _check_fractions(fractions)
    names = sorted(set(image_names))
    order = sorted(names, key=lambda n: hashlib.blake2b(f"{seed}:{n}".encode(), digest_size=8).digest())
    n = len(order)
    n_val, n_test = round(n * val_f), round(n * test_f)
    # Every split asked for gets at least one image once there are enough images.
    if n >= 3:
        n_val = max(n_val, 1 if val_f > 0 else 0)
        n_test = max(n_test, 1 if test_f > 0 else 0)
    n_train = n - n_val - n_test
    return {
        "train": sorted(order[:n_train]),
        "val": sorted(order[n_train : n_train + n_val]),
        "test": sorted(order[n_train + n_val :]),
    }


def cache_dir() -> Path:
    """``$DLDNA_CACHE_DIR`` or ``~/.cache/dldna``: downloads, and splits and image caches
    of read-only data."""
    return Path(os.environ.get("DLDNA_CACHE_DIR") or Path.home() / ".cache" / "dldna")


def _write_json_atomic(path: Path, payload: Any) -> None:
    atomic_write_json(path, payload)


def derived_folders(
    data_root: str | os.PathLike[str], kind: str, preferred: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """The two folders where files derived from ``data_root`` (splits, image caches) live.

    First ``preferred`` (default: ``data_root`` itself), beside the data; second
    ``cache_dir()/kind/<key>``, for data the user cannot write. The key is a hash of the
    data folder's absolute path, so two data folders never share derived files.
    """
    root = Path(data_root)
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(preferred) if preferred is not None else root, cache_dir() / kind / key


def save_derived(file_name: str, folders: Sequence[Path], write: Callable[[Path], None]) -> Path:
    """Call ``write(path)`` for ``file_name`` in the first of ``folders`` that takes it.

    A folder that refuses the file (read-only data, a full disk) is skipped with a note in
    the log, and the next one is tried; only the last folder's error is raised. Returns
    the path written.
    """
    for i, folder in enumerate(folders):
        path = Path(folder) / file_name
        try:
            write(path)
            return path
        except OSError as exc:
            if i == len(folders) - 1:
                raise
            logger.info("Cannot write %s (%s); saving it to %s instead.", path, exc, Path(folders[i + 1]) / file_name)
    raise ValueError("save_derived needs at least one folder")


def _read_split(path: Path, names: set[str], fractions: tuple[float, float, float]) -> dict[str, list[str]] | None:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        splits = {k: list(saved["splits"][k]) for k in SPLIT_NAMES}
        saved_fractions = tuple(saved["fractions"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    listed = [n for k in SPLIT_NAMES for n in splits[k]]
    if set(listed) != names or len(listed) != len(names) or saved_fractions != fractions:
        logger.warning("%s does not match the current images or fractions; making a new split.", path)
        return None
    return splits


def load_or_create_split(
    data_root: str | os.PathLike[str],
    image_names: Iterable[str],
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> dict[str, list[str]]:
    """The image-level split for ``seed``, saved as ``data_root/splits-seed{seed}.json``.

    Every model of a comparison must see the same split, so it is computed once and then
    read back. A saved file is used only if it covers exactly these images with the same
    fractions. When ``data_root`` is not writable, the file goes to :func:`cache_dir`
    (see :func:`derived_folders`).
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DatasetLayoutError(f"Data folder {root} does not exist.\n{layout_help(root)}")
    fractions = _check_fractions(fractions)
    names = set(image_names)
    file_name = f"splits-seed{seed}.json"
    folders = derived_folders(root, "splits")
    for candidate in (folder / file_name for folder in folders):
        if candidate.is_file():
            splits = _read_split(candidate, names, fractions)
            if splits is not None:
                return splits

    splits = image_level_split(names, seed=seed, fractions=fractions)
    payload = {
        "seed": seed,
        "fractions": list(fractions),
        "counts": {k: len(v) for k, v in splits.items()},
        "splits": splits,
    }
    save_derived(file_name, folders, lambda path: _write_json_atomic(path, payload))
    return splits


# -------------------------------------------------------------------------- dataset


class Flickr8kDataset(Dataset):
    """Image-caption pairs in Flickr8k's layout (real Flickr8k or synthetic shapes).

    Item ``i`` is ``(image, input_ids, attention_mask)`` when a Hugging Face ``tokenizer``
    is given, else ``(image, caption)``; ``image`` is ``transform(PIL RGB image)``, or the
    PIL image itself without a transform. Captions are tokenised once, here, for all
    pairs: tokenising per item would repeat the same work every epoch.

    ``images`` restricts the dataset to a subset of image names (one split). Attributes
    for retrieval metrics: ``pairs``, ``image_names`` (unique, in file order),
    ``captions_by_image`` and ``image_index`` (for each pair, the index of its image in
    ``image_names``: five captions share one image).
    """

    def __init__(
        self,
        image_dir: str | os.PathLike[str],
        caption_file: str | os.PathLike[str],
        transform: Callable[[Image.Image], Any] | None = None,
        tokenizer: Callable[..., Any] | None = None,
        max_length: int = 32,
        images: Iterable[str] | None = None,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.caption_file = Path(caption_file)
        self.transform = transform
        self.max_length = max_length
        root = self.caption_file.parent
        if not self.image_dir.is_dir():
            raise DatasetLayoutError(f"Image folder {self.image_dir} not found.\n{layout_help(root)}")
        if not self.caption_file.is_file():
            raise DatasetLayoutError(f"Caption file {self.caption_file} not found.\n{layout_help(root)}")

        pairs = read_captions(self.caption_file)
        if not pairs:
            raise CaptionFileError(f"{self.caption_file} holds no caption rows.\n{layout_help(root)}")
        if images is not None:
            wanted = set(images)
            unknown = wanted - {name for name, _ in pairs}
            if unknown:
                raise ValueError(
                    f"{len(unknown)} requested images are not in {self.caption_file} "
                    f"(e.g. {sorted(unknown)[:_MISSING_SHOWN]}); was the split made for other data?"
                )
            pairs = [p for p in pairs if p[0] in wanted]
        self.pairs = self._drop_missing(pairs)

        self.image_names: list[str] = list(dict.fromkeys(name for name, _ in self.pairs))
        position = {name: i for i, name in enumerate(self.image_names)}
        self.image_index: list[int] = [position[name] for name, _ in self.pairs]
        self.captions_by_image: dict[str, list[str]] = {name: [] for name in self.image_names}
        for name, caption in self.pairs:
            self.captions_by_image[name].append(caption)

        self.tokenizer = tokenizer
        self.input_ids: torch.Tensor | None = None  # [N, max_length]
        self.attention_mask: torch.Tensor | None = None  # [N, max_length]
        if tokenizer is not None:
            encoded = tokenizer(
                [caption for _, caption in self.pairs],
                padding="max_length",
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            self.input_ids = encoded["input_ids"]
            self.attention_mask = encoded["attention_mask"]

    def _drop_missing(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Drop rows whose image file is absent, with one warning for all of them."""
        on_disk = set(os.listdir(self.image_dir))
        missing = sorted({name for name, _ in pairs if name not in on_disk})
        if not missing:
            return pairs
        n_listed = len({name for name, _ in pairs})
        if len(missing) == n_listed:
            raise DatasetLayoutError(
                f"None of the {n_listed} images listed in {self.caption_file} is in {self.image_dir} "
                f"(e.g. {missing[:_MISSING_SHOWN]}).\n{layout_help(self.caption_file.parent)}"
            )
        logger.warning(
            "%d of %d images listed in %s are missing from %s; their captions are dropped. First missing: %s",
            len(missing), n_listed, self.caption_file, self.image_dir, ", ".join(missing[:_MISSING_SHOWN]),
        )  # fmt: skip
        gone = set(missing)
        return [p for p in pairs if p[0] not in gone]

    def image_path(self, name: str) -> Path:
        return self.image_dir / name

    def load_image(self, name: str) -> Image.Image:
        """Open one image as RGB; an unreadable file raises an error that names it."""
        path = self.image_path(name)
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"Image {path} disappeared after the dataset was built.") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImageError(
                f"Cannot decode image {path}: {exc}. Delete it, or download/regenerate the dataset."
            ) from exc

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        name, caption = self.pairs[index]
        image = self.load_image(name)
        if self.transform is not None:
            image = self.transform(image)
        if self.input_ids is None or self.attention_mask is None:
            return image, caption
        return image, self.input_ids[index], self.attention_mask[index]


# ------------------------------------------------------------------------- download


def _count_images(image_dir: Path) -> int:
    return sum(1 for n in os.listdir(image_dir) if _IMAGE_NAME.match(n))


def _find_root(dest: Path) -> Path | None:
    """The folder under ``dest`` (itself or one level down) holding Images/ + captions.txt."""
    for candidate in (dest, *sorted(p for p in dest.iterdir() if p.is_dir())):
        if (candidate / "Images").is_dir() and (candidate / "captions.txt").is_file():
            return candidate
    return None


def _verify_flickr8k(root: Path) -> None:
    n_images = _count_images(root / "Images")
    n_captions = len(read_captions(root / "captions.txt"))
    if (n_images, n_captions) != (FLICKR8K_IMAGES, FLICKR8K_CAPTIONS):
        raise DatasetLayoutError(
            f"{root} holds {n_images} images and {n_captions} captions; Flickr8k has "
            f"{FLICKR8K_IMAGES} and {FLICKR8K_CAPTIONS}. Delete the folder and download again."
        )


def _complete_copy(dest: Path) -> Path | None:
    if not dest.is_dir():
        return None
    root = _find_root(dest)
    if root is None:
        return None
    try:
        _verify_flickr8k(root)
    except (DatasetLayoutError, CaptionFileError):
        return None
    return root


def _download(url: str, part: Path, expected: int) -> None:
    """Stream ``url`` into ``part``, resuming a partial file when the server allows it."""
    from tqdm import tqdm

    start = part.stat().st_size if part.exists() else 0
    if start > expected:
        part.unlink()
        start = 0
    if start == expected:
        return
    headers = {"User-Agent": "dldna"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        if start and response.status != 206:  # the server ignored the range: start over
            start = 0
        with open(part, "ab" if start else "wb") as f, tqdm(
            total=expected, initial=start, unit="B", unit_scale=True, desc="Flickr8k"
        ) as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))


def _local_archives(dest: Path) -> list[Path]:
    """Where a copy of the original Flickr8k zip is looked for, in this order."""
    from .prepare import data_home

    name = Path(FLICKR8K_URL).name
    return list(dict.fromkeys([dest / name, data_home() / name, cache_dir() / name]))


def _check_archive_size(archive: Path) -> None:
    size = archive.stat().st_size
    if size != FLICKR8K_ZIP_BYTES:
        raise DatasetLayoutError(
            f"{archive} has {size:,} bytes; the Flickr8k zip ({FLICKR8K_URL}) has "
            f"{FLICKR8K_ZIP_BYTES:,}. Delete or replace it, then run download_flickr8k again."
        )


def _unpack(archive: Path, dest: Path) -> Path:
    logger.info("Unpacking %s into %s", archive, dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)  # extractall drops absolute paths and '..' components
    except zipfile.BadZipFile as exc:
        raise DatasetLayoutError(f"{archive} is not a readable zip file ({exc}). Delete it and download again.") from None
    stray = dest / "__MACOSX"
    if stray.is_dir():
        shutil.rmtree(stray)
    root = _find_root(dest)
    if root is None:
        raise DatasetLayoutError(f"{archive} did not contain Images/ and captions.txt.\n{layout_help(dest)}")
    _verify_flickr8k(root)
    return root


def download_flickr8k(dest_dir: str | os.PathLike[str] = "data/flickr8k") -> Path:
    """Download and unpack Flickr8k (8,091 images, 40,455 captions); return its folder.

    Idempotent, and local copies come first, so no network is needed when one exists:

    1. an unpacked copy in ``dest_dir`` (``Images/`` + ``captions.txt``, or one level down);
    2. the original zip (``flickr8k.zip``) in ``dest_dir``, in ``$DLDNA_DATA_DIR`` or in
       the cache folder (``$DLDNA_CACHE_DIR``), unpacked into ``dest_dir``;
    3. else a download, after checking that the host answers (an offline machine fails in
       seconds with a message naming the alternatives; ``HF_HUB_OFFLINE=1`` forbids it).

    A local zip is verified like a download (its byte size), every copy by its number of
    images and captions.
    """
    dest = Path(dest_dir)
    existing = _complete_copy(dest)
    if existing is not None:
        logger.info("Flickr8k already present in %s.", existing)
        return existing
    candidates = _local_archives(dest)
    local = next((path for path in candidates if path.is_file()), None)
    if local is not None:
        logger.info("Using the local copy %s of the Flickr8k zip", local)
        _check_archive_size(local)
        root = _unpack(local, dest)
        logger.info("Flickr8k ready in %s", root)
        return root

    runtime.require_online(
        "the Flickr8k dataset",
        FLICKR8K_HOST,
        where=f"{dest} and {', '.join(str(p) for p in candidates)}",
        how_to_get=f"download {FLICKR8K_URL} into {cache_dir()}",
    )
    dest.mkdir(parents=True, exist_ok=True)
    archive, part = dest / Path(FLICKR8K_URL).name, dest / (Path(FLICKR8K_URL).name + ".part")
    logger.info("Downloading Flickr8k (%.2f GB) from %s", FLICKR8K_ZIP_BYTES / 1e9, FLICKR8K_URL)
    _download(FLICKR8K_URL, part, FLICKR8K_ZIP_BYTES)
    size = part.stat().st_size
    if size != FLICKR8K_ZIP_BYTES:
        part.unlink()
        raise OSError(
            f"Downloaded {size} bytes from {FLICKR8K_URL}, expected {FLICKR8K_ZIP_BYTES}. "
            "The partial file was removed; run download_flickr8k again."
        )
    os.replace(part, archive)
    root = _unpack(archive, dest)
    archive.unlink()  # our own download; a user's local zip is left where it was
    logger.info("Flickr8k ready in %s", root)
    return root
