"""Runtime profiles: the one place that knows about ``smoke`` and ``full``.

A notebook or training entry point calls :func:`setup` once with its ``profile``
parameter. The answer is a :class:`Runtime` that the loaders read; chapter code only
ever receives models, tokenizers and datasets built from it.

Resolution order for the profile: the explicit argument, else the ``DLDNA_PROFILE``
environment variable, else ``"full"`` (a reader in Colab gets the real models).

Two environment variables change what ``full`` may use:

* ``DLDNA_RANDOM_WEIGHTS=1`` (older name ``DLDNA_OFFLINE=1``, still read) keeps the
  full-size architectures but gives them random weights and synthetic data: the way to
  measure throughput on a machine without internet. Only this variable asks for it.
* ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1`` (Hugging Face's convention) means
  "local copies only": models come from the local Hugging Face and torch caches, datasets
  from their local mirrors, and anything missing is a clear error, never a download.
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np
import torch

from dldna.params import ParameterError, check_params, integer
from dldna.timing import show_in_notebook

logger = logging.getLogger(__name__)

PROFILES = ("smoke", "full")
_TRUTHY = {"1", "true", "yes", "on"}
_banner_shown = False


class ProfileError(ValueError):
    """An unknown profile name."""


class ResourceUnavailableError(RuntimeError):
    """The full profile needs a model or dataset that cannot be reached."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def resolve_profile(profile: str | None = None) -> str:
    """Return ``profile``, else ``$DLDNA_PROFILE``, else ``"full"``; validate it."""
    chosen = profile if profile not in (None, "") else os.environ.get("DLDNA_PROFILE") or "full"
    chosen = chosen.strip().lower()
    if chosen not in PROFILES:
        raise ProfileError(f"Unknown profile {chosen!r}; choose one of {', '.join(PROFILES)}.")
    return chosen


#: Variables that ask the full profile for full-size random weights and synthetic data.
RANDOM_WEIGHTS_VARS = ("DLDNA_RANDOM_WEIGHTS", "DLDNA_OFFLINE")
#: Hugging Face's "local files only" variables; the package applies them to every download.
LOCAL_ONLY_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_requested() -> bool:
    """True when ``DLDNA_RANDOM_WEIGHTS`` (or its older name ``DLDNA_OFFLINE``) is set.

    This is the explicit request for full-size random weights; ``HF_HUB_OFFLINE`` is not:
    it means "use the local cache" (see :func:`local_files_only`).
    """
    return any(_env_flag(name) for name in RANDOM_WEIGHTS_VARS)


def local_files_only() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set: no downloads at all."""
    return any(_env_flag(name) for name in LOCAL_ONLY_VARS)


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA, then Apple's MPS, then the CPU."""
    if device not in (None, "", "auto"):
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


@dataclass(frozen=True)
class Runtime:
    """What a run may use: the profile, whether weights are random, device and seed."""

    profile: str = "smoke"
    offline: bool = False
    device: torch.device = torch.device("cpu")
    seed: int = 0

    @property
    def smoke(self) -> bool:
        """Tiny models and small synthetic data."""
        return self.profile == "smoke"

    @property
    def synthetic(self) -> bool:
        """Random weights and synthetic data (smoke, or full while offline)."""
        return self.smoke or self.offline

    @property
    def banner(self) -> str:
        if self.smoke:
            what = "tiny models built from their configs"
            trained = _scene_models_note()
        else:
            what, trained = "full-size architectures", ""
        return (
            f"dldna profile={self.profile}{' (offline)' if self.offline else ''}: "
            f"{what} with RANDOM weights and SYNTHETIC data{trained}. Outputs show that the "
            "code runs; they are not the real models' answers. Run with profile='full' and "
            "internet access for the pretrained models and real datasets."
        )


def _scene_models_note() -> str:
    """What the smoke profile's BLIP, ViLT and CLIP are, from their ``training.json``."""
    from .weights import training_seconds

    try:
        seconds = training_seconds()
    except (FileNotFoundError, KeyError, ValueError):
        return ""
    return (
        f"; BLIP, ViLT and CLIP are small models trained for {seconds:.0f} s on synthetic scenes"
        " (held-out scenes are what they can describe)"
    )


#: The largest seed NumPy accepts (``np.random.seed`` takes 32-bit seeds).
SEED_MAX = 2**32 - 1
_DEVICES_ALLOWED = "None or 'auto' (the best this machine has), 'cpu', 'cuda', 'cuda:N' or 'mps'"


def available_device(device: str | torch.device | None = None) -> torch.device:
    """:func:`select_device`, checked: a device that this machine has.

    ``"cuda"`` on a machine without CUDA, ``"cuda:3"`` with one GPU, ``"mps"`` off Apple
    silicon and names torch does not know raise :class:`~dldna.params.ParameterError`
    here, instead of an error several cells later when the first tensor moves.
    """
    if device is not None and not isinstance(device, (str, torch.device)):
        raise ParameterError(f"Parameter device = {device!r} is not allowed: use {_DEVICES_ALLOWED}.")
    try:
        chosen = select_device(device)
    except (RuntimeError, ValueError) as exc:
        raise ParameterError(
            f"Parameter device = {device!r} is not allowed: use {_DEVICES_ALLOWED} ({exc})."
        ) from None
    missing = None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            missing = "this machine has no CUDA GPU (torch.cuda.is_available() is False)"
        elif chosen.index is not None and chosen.index >= count:
            missing = f"this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
    elif chosen.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            missing = "Apple's MPS backend is not available on this machine"
    if missing:
        raise ParameterError(
            f"Parameter device = {device!r} is not allowed: {missing}. Use device=None to take "
            "the best device available, or 'cpu'."
        )
    return chosen


def setup(
    profile: str | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> Runtime:
    """Resolve the profile, pick the device, seed everything and show the banner once.

    Bad values fail here, with a :class:`~dldna.params.ParameterError` that names the
    parameter, its value and what is allowed: a seed that is not an integer in
    ``[0, 2**32 - 1]``, a profile that is not a string, or a device this machine lacks
    (``"cuda"`` without CUDA).
    """
    global _banner_shown
    if profile is not None and not isinstance(profile, str):
        raise ParameterError(
            f"Parameter profile = {profile!r} is not allowed: use one of {', '.join(map(repr, PROFILES))}, "
            "or None for $DLDNA_PROFILE (default 'full')."
        )
    check_params(seed=(seed, integer(0, SEED_MAX)))
    resolved = resolve_profile(profile)
    runtime = Runtime(
        profile=resolved,
        offline=resolved == "full" and offline_requested(),
        device=available_device(device),
        seed=int(seed),
    )
    seed_everything(runtime.seed)
    if runtime.smoke and runtime.device.type == "cpu":
        # Smoke models are tiny: one thread beats a thread pool that synchronises on every
        # small matrix product, and stays fast when other processes share the cores.
        torch.set_num_threads(1)
    show_in_notebook()  # the expected run time of a training loop is for the reader
    if runtime.synthetic and not _banner_shown:
        logger.warning(runtime.banner)
        _banner_shown = True
    return runtime


#: Seconds the reachability check waits for a host's HTTPS answer.
REACHABILITY_TIMEOUT = 5.0


def probe_url(host: str) -> str:
    """The URL the reachability check asks: ``https://host/``, or ``host`` if it is a URL."""
    return host if "://" in host else f"https://{host}/"


def reachability_problem(host: str, timeout: float = REACHABILITY_TIMEOUT) -> str | None:
    """``None`` when :func:`probe_url` answers within ``timeout`` seconds, else the reason.

    A real HTTPS request (TLS handshake, one ``HEAD``), not a TCP connect: a network
    that accepts connections but breaks TLS (a proxy, a captive portal) fails here in
    seconds instead of in a library's retries. Any HTTP status counts as an answer.
    """
    request = urllib.request.Request(probe_url(host), method="HEAD", headers={"User-Agent": "dldna"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:  # the server answered over TLS: reachable
        return None
    except (urllib.error.URLError, ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def host_reachable(host: str, timeout: float = REACHABILITY_TIMEOUT) -> bool:
    """True when :func:`probe_url` answers (see :func:`reachability_problem`)."""
    problem = reachability_problem(host, timeout)
    if problem is not None:
        logger.warning("%s cannot be used: %s", probe_url(host), problem)
    return problem is None


def _ways_out(resource: str, how_to_get: str) -> str:
    get = f"get it on a machine with internet ({how_to_get}) and copy it here" if how_to_get else (
        "download it once on a machine with internet and copy it here")
    return (
        f"Ways out: {get}; or run the small offline version with profile='smoke' (or "
        "DLDNA_PROFILE=smoke); or set DLDNA_RANDOM_WEIGHTS=1 for the full-size "
        "architectures with random weights and synthetic data."
    )


def require_online(resource: str, host: str, where: str = "", how_to_get: str = "") -> None:
    """Fail fast, naming ``resource`` and the ways out, when it cannot be downloaded.

    ``where`` says where a local copy was looked for, ``how_to_get`` how to make one.
    Under ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) nothing is downloaded, so
    this always raises; otherwise it returns when ``https://host`` answers.
    """
    hint = f" (looked in {where})" if where else ""
    if local_files_only():
        flags = " / ".join(f"{n}=1" for n in LOCAL_ONLY_VARS if _env_flag(n))
        raise ResourceUnavailableError(
            f"{resource[:1].upper()}{resource[1:]} is not available locally{hint}, and {flags} allows local copies "
            f"only. {_ways_out(resource, how_to_get)}"
        )
    if host_reachable(host):
        return
    raise ResourceUnavailableError(
        f"The full profile needs {resource}{hint}, but {probe_url(host)} cannot be reached from "
        f"this machine. {_ways_out(resource, how_to_get)}"
    )
