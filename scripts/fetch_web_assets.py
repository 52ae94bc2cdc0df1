#!/usr/bin/env python3
"""Vendor MathJax 3 and mermaid 11 into ``book/_static/vendor`` so the book renders offline.

Without this step every page would load MathJax and mermaid from a CDN, and a reader with
no internet (or the browser check, which runs with networking off) would see raw TeX and
empty diagrams. The packages come from the npm registry through ``npm pack`` (or, where npm
is missing, the same tarball over HTTPS), are checked against pinned sha512 digests, and
only the files the site loads are unpacked. Sphinx then copies ``book/_static`` into the
build's ``_static`` folder; ``_config.yml`` points ``mathjax_path`` and
``mermaid_use_local`` there.

Idempotent: a package whose ``VENDORED.txt`` already names the pinned version is skipped,
so ``make book`` pays for this once. Usage::

    python scripts/fetch_web_assets.py [--force] [--check]
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("fetch_web_assets")

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".web_assets"  # downloaded tarballs (git-ignored)
VENDOR_DIR = ROOT / "book" / "_static" / "vendor"  # unpacked files (git-ignored)
STAMP = "VENDORED.txt"


@dataclass(frozen=True)
class WebPackage:
    """One npm package and the part of it the site serves.

    ``strip`` is the folder inside the tarball that becomes ``vendor/<dest>/``;
    ``include``/``exclude`` are glob patterns on paths relative to ``strip``.
    """

    name: str
    version: str
    integrity: str  # npm's "dist.integrity" (sha512, base64)
    dest: str
    strip: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    licence: str = "package/LICENSE"

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"

    @property
    def tarball_url(self) -> str:
        return f"https://registry.npmjs.org/{self.name}/-/{self.tarball_name}"


PACKAGES: tuple[WebPackage, ...] = (
    # MathJax finds its fonts and lazily loaded extensions relative to the component
    # script, so the folders under es5/ come along; the other combined components
    # (SVG output, MathML-only, ...) are left out.
    WebPackage(
        name="mathjax",
        version="3.2.2",
        integrity="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        dest="mathjax",
        strip="package/es5/",
        include=("tex-mml-chtml.js", "*/*"),
        exclude=("output/svg*", "*.map"),
    ),
    # sphinxcontrib-mermaid imports the ES-module build, which pulls in its sibling
    # chunk files; the single-file UMD build serves pages opened from file://, where
    # browsers refuse to import modules.
    WebPackage(
        name="mermaid",
        version="11.12.1",
        integrity="sha512-UlIZrRariB11TY1RtTgUWp65tphtBv4CSq7vyS2ZZ2TgoMjs2nloq+wFqxiwcxlhHUvs7DPGgMjs2aeQxz5h9g==",
        dest="mermaid",
        strip="package/dist/",
        include=("mermaid.esm.min.mjs", "chunks/mermaid.esm.min/*.mjs", "mermaid.min.js"),
    ),
)


class AssetError(RuntimeError):
    """A web asset could not be fetched or failed its integrity check."""


def _sri_digest(path: Path) -> str:
    """Return the file's digest in npm's ``sha512-<base64>`` form."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def _download(package: WebPackage) -> Path:
    """Return the verified tarball of ``package``, downloading it into the cache if needed."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / package.tarball_name
    if not tarball.exists():
        npm = shutil.which("npm")
        if npm:
            logger.info("npm pack %s", package.spec)
            subprocess.run(
                [npm, "pack", package.spec, "--pack-destination", str(CACHE_DIR), "--silent"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        else:
            logger.info("npm not found; downloading %s", package.tarball_url)
            partial = tarball.with_suffix(".part")
            urllib.request.urlretrieve(package.tarball_url, partial)
            partial.replace(tarball)
    if not tarball.exists():
        raise AssetError(f"npm pack {package.spec} did not produce {tarball}")
    found = _sri_digest(tarball)
    if found != package.integrity:
        tarball.unlink()
        raise AssetError(
            f"{tarball.name} failed its integrity check (expected {package.integrity}, "
            f"got {found}); it was deleted, run this script again to re-download it."
        )
    return tarball


def _wanted(package: WebPackage, member: tarfile.TarInfo) -> str | None:
    """Return the member's path below ``vendor/<dest>/`` when the site needs it, else None."""
    if not member.isfile():
        return None
    if member.name == package.licence:
        return "LICENSE"
    if not member.name.startswith(package.strip):
        return None
    rel = member.name[len(package.strip):]
    if not any(fnmatch.fnmatch(rel, pattern) for pattern in package.include):
        return None
    if any(fnmatch.fnmatch(rel, pattern) for pattern in package.exclude):
        return None
    return rel


def _stamp_text(package: WebPackage) -> str:
    return f"{package.spec}\n{package.integrity}\nfrom {package.tarball_url}\n"


def is_vendored(package: WebPackage) -> bool:
    """True when ``vendor/<dest>/`` holds the pinned version of ``package``."""
    stamp = VENDOR_DIR / package.dest / STAMP
    return stamp.is_file() and stamp.read_text() == _stamp_text(package)


def vendor(package: WebPackage, force: bool = False) -> Path:
    """Unpack the files the site serves from ``package`` into ``vendor/<dest>/``."""
    target = VENDOR_DIR / package.dest
    if is_vendored(package) and not force:
        logger.info("%s already in %s", package.spec, target.relative_to(ROOT))
        return target
    tarball = _download(package)
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    # Unpack next to the target and swap, so an interrupted run never leaves half a package.
    staging = Path(tempfile.mkdtemp(prefix=f".{package.dest}-", dir=VENDOR_DIR))
    try:
        count = 0
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive.getmembers():
                rel = _wanted(package, member)
                if rel is None:
                    continue
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None  # regular files always have content
                with source, out.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                count += 1
        if count == 0:
            raise AssetError(f"{package.spec}: no file matched {package.include}")
        (staging / STAMP).write_text(_stamp_text(package))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("%s: %d files -> %s", package.spec, count, target.relative_to(ROOT))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="unpack again even when present")
    parser.add_argument(
        "--check", action="store_true", help="only report whether the assets are present"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[web assets] %(message)s")
    if args.check:
        missing = [p.spec for p in PACKAGES if not is_vendored(p)]
        if missing:
            logger.error("missing: %s (run: python scripts/fetch_web_assets.py)", ", ".join(missing))
            return 1
        logger.info("all present in %s", VENDOR_DIR.relative_to(ROOT))
        return 0
    try:
        for package in PACKAGES:
            vendor(package, force=args.force)
    except (AssetError, OSError, subprocess.CalledProcessError) as error:
        logger.error(
            "%s\nThe book needs MathJax and mermaid from the npm registry once; check the "
            "network or put the tarballs (%s) into %s by hand.",
            error,
            ", ".join(p.tarball_name for p in PACKAGES),
            CACHE_DIR,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
