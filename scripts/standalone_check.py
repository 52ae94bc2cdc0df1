"""Run notebooks the way a Colab reader does: alone, against a package installed from git.

For each notebook (default: 10.6) the check

1. creates a fresh virtual environment outside the repository whose site-packages gets a
   path file naming the project venv's site-packages, so torch, transformers and the rest
   are importable without being downloaded again, while the project's editable `dldna`
   is not (its own path file lies in the added folder, and Python processes path files
   only in site directories, not in folders that a path file adds);
2. installs `dldna[colab] @ git+file://localhost<repo>@<HEAD>` with pip from the
   committed HEAD (`--no-index`: everything else must already be there), and checks that
   `dldna` and the `python3` kernel now come from the fresh environment;
3. copies the committed notebook alone into an empty folder, with an empty data folder
   (`DLDNA_DATA_DIR`), and runs it with `papermill -p profile smoke`;
4. fails if a cell raised, if the install cell tried to install (it must accept the
   installed version), or if any output says "skipped" or "not found".

Every process of the fresh environment (pip, papermill, the kernel) loads a guard that
refuses to resolve or connect to a non-loopback address and records the attempt; any
record fails the check.

Usage: python scripts/standalone_check.py [--keep] [NOTEBOOK ...]
(paths relative to the repository root).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

log = logging.getLogger("standalone_check")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOKS = ("notebooks/en/10_06_cross_attention_ablation.ipynb",)
# What a result cell must never show when the notebook runs alone.
FORBIDDEN = re.compile(r"skipped|not found|Installing dldna from", re.IGNORECASE)
# Lines that match FORBIDDEN on purpose: 10.4 reproduces the original reader's error.
EXPECTED = {
    "10_04_multimodal_embedding": re.compile(
        r"^naive reader -> Image file not found: \S+/Images/image$"
    ),
}
CELL_TIMEOUT_S = 600

GUARD_MODULE = '''\
"""Loaded by a path file in this check's venv: no non-loopback network access."""
import ipaddress
import os
import socket

_LOCAL = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _loopback(host):
    if host is None:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host in _LOCAL:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what):
    with open(os.environ["DLDNA_NETWORK_GUARD_LOG"], "a", encoding="utf-8") as f:
        f.write(f"pid {os.getpid()}: {what}\\n")
    raise OSError(f"standalone check: network access refused: {what}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _refuse(f"connect {address!r}")


def connect(sock, address):
    _check(sock, address)
    return _connect(sock, address)


def connect_ex(sock, address):
    _check(sock, address)
    return _connect_ex(sock, address)


def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        _refuse(f"resolve {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


if os.environ.get("DLDNA_NETWORK_GUARD_LOG"):
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
'''


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    log.info("$ %s", " ".join(map(str, cmd)))
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def purelib(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, text=True, capture_output=True,
    )
    return Path(out.stdout.strip())


def clean_env(work: Path, venv: Path) -> dict[str, str]:
    """The environment of a reader's session: no project variables, offline Hub."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DLDNA_", "PYTHON", "JUPYTER", "VIRTUAL_ENV", "PIP_"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        DLDNA_DATA_DIR=str(work / "data"),
        DLDNA_NETWORK_GUARD_LOG=str(work / "network.log"),
        HF_HOME=str(work / "hf"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        MPLBACKEND="Agg",
    )
    return env


def make_venv(work: Path, base_python: Path) -> Path:
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = purelib(python)
    # A plain path line: the base's own path files (the editable dldna) are not processed.
    (site / "zz_dldna_base.pth").write_text(f"{purelib(base_python)}\n", encoding="utf-8")
    (site / "_dldna_network_guard.py").write_text(GUARD_MODULE, encoding="utf-8")
    (site / "_dldna_network_guard.pth").write_text(
        "import _dldna_network_guard\n", encoding="utf-8"
    )
    return venv


def where(python: Path, env: dict[str, str], code: str) -> str:
    out = subprocess.run(
        [str(python), "-c", code], check=True, text=True, capture_output=True,
        env=env, cwd=env["DLDNA_DATA_DIR"],
    )
    return out.stdout.strip()


def install(venv: Path, env: dict[str, str], commit: str) -> None:
    python = venv / "bin" / "python"
    code = "import importlib.util as u; s = u.find_spec('dldna'); print(s and s.origin)"
    before = where(python, env, code)
    if before != "None":
        raise SystemExit(f"fresh venv already imports dldna from {before}")
    # pip 23's URL parser rejects an empty host (git+file:///...); git accepts localhost.
    url = f"git+file://localhost{REPO}@{commit}"
    run(
        [str(python), "-m", "pip", "install", "-q", "--no-build-isolation",
         f"dldna[colab] @ {url}"],
        env=env, cwd=env["DLDNA_DATA_DIR"],
    )
    origin = where(python, env, code)
    if not origin.startswith(str(venv)):
        raise SystemExit(f"dldna imports from {origin}, not from the fresh venv {venv}")
    run([str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
        env=env, stdout=subprocess.DEVNULL)
    kernel = json.loads(
        (venv / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").read_text()
    )
    if Path(kernel["argv"][0]) != python:
        raise SystemExit(f"kernel python3 runs {kernel['argv'][0]}, not {python}")
    log.info("dldna installed from %s into %s", url, origin)


def output_texts(output: dict) -> list[str]:
    if output["output_type"] == "stream":
        return ["".join(output["text"])]
    if output["output_type"] == "error":
        return [f"{output['ename']}: {output['evalue']}"]
    data = output.get("data", {})
    return ["".join(data[kind]) for kind in ("text/plain", "text/html", "text/markdown")
            if kind in data]


def problems(executed: Path) -> list[str]:
    nb = json.loads(executed.read_text(encoding="utf-8"))
    expected = EXPECTED.get(executed.stem)
    found = []
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                found.append(f"cell {index}: {output['ename']}: {output['evalue']}")
            for text in output_texts(output):
                for line in text.splitlines():
                    if FORBIDDEN.search(line) and not (
                        expected and expected.match(line.strip())
                    ):
                        found.append(f"cell {index}: {line.strip()[:200]}")
    return found


def check_notebook(notebook: str, venv: Path, env: dict[str, str], commit: str,
                   work: Path) -> list[str]:
    folder = work / "alone" / Path(notebook).stem
    folder.mkdir(parents=True)
    source = folder / Path(notebook).name
    source.write_bytes(
        subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{notebook}"],
                       check=True, capture_output=True).stdout
    )
    executed = work / "executed" / Path(notebook).name
    executed.parent.mkdir(exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "papermill", "--log-level", "WARNING",
         "--execution-timeout", str(CELL_TIMEOUT_S), "-k", "python3",
         source.name, str(executed), "-p", "profile", "smoke"],
        text=True, capture_output=True, env=env, cwd=folder,
    )
    seconds = time.perf_counter() - start
    found = problems(executed) if executed.exists() else []
    if result.returncode != 0:
        found.append(f"papermill exited {result.returncode}: {result.stderr[-2000:]}")
    left = sorted(p.name for p in folder.iterdir() if p != source)
    log.info("%s: %.0f s alone, %d problem(s); the folder now holds %s", notebook,
             seconds, len(found), left or "nothing else")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=list(DEFAULT_NOTEBOOKS))
    parser.add_argument("--base-python", type=Path, default=REPO / ".venv" / "bin" / "python",
                        help="the venv that supplies torch and the other dependencies")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="standalone-check: %(message)s")
    for notebook in args.notebooks:
        if not (REPO / notebook).is_file():
            parser.error(f"notebook {notebook!r} not found under {REPO}")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True,
                            text=True, capture_output=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                            "dldna", "pyproject.toml", *args.notebooks],
                           check=True, text=True, capture_output=True).stdout
    if dirty:
        log.warning("uncommitted changes are not checked (the committed HEAD %s is):\n%s",
                    commit[:12], dirty)
    work = Path(tempfile.mkdtemp(prefix="dldna-standalone-"))
    if work.resolve().is_relative_to(REPO):
        parser.error(f"the work folder {work} lies inside the repository")
    start = time.perf_counter()
    try:
        (work / "data").mkdir()
        venv = make_venv(work, args.base_python)
        env = clean_env(work, venv)
        install(venv, env, commit)
        log.info("venv and install: %.0f s", time.perf_counter() - start)
        failures = {nb: check_notebook(nb, venv, env, commit, work) for nb in args.notebooks}
        network = work / "network.log"
        if network.exists():
            failures["network"] = network.read_text(encoding="utf-8").splitlines()
    finally:
        if args.keep:
            log.info("work folder kept: %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    bad = {name: found for name, found in failures.items() if found}
    for name, found in bad.items():
        log.error("%s:\n  %s", name, "\n  ".join(found))
    log.info("%d notebook(s) alone, %s, %.0f s in all", len(args.notebooks),
             "FAILED" if bad else "all clean", time.perf_counter() - start)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
