"""Runtime profiles: the one place that knows about ``smoke`` and ``full``.

A notebook or training entry point calls :func:`setup` once with its ``profile``
parameter. The answer is a :class:`Runtime` that the loaders read; chapter code only
ever receives models, tokenizers and datasets built from it.

Resolution order for the profile: the explicit argument, else the ``DLDNA_PROFILE``
environment variable, else ``"full"`` (a reader in Colab gets the real models).

``full`` with ``DLDNA_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) keeps full-size
architectures but gives them random weights and synthetic data: the way to measure
throughput on a machine without internet.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from dataclasses import dataclass

import numpy as np
import torch

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


def offline_requested() -> bool:
    """True when ``DLDNA_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value."""
    return _env_flag("DLDNA_OFFLINE") or _env_flag("HF_HUB_OFFLINE")


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
        else:
            what = "full-size architectures"
        return (
            f"dldna profile={self.profile}{' (offline)' if self.offline else ''}: "
            f"{what} with RANDOM weights and SYNTHETIC data. Outputs show that the code "
            "runs; they are not the real models' answers. Run with profile='full' and "
            "internet access for the pretrained models and real datasets."
        )


def setup(
    profile: str | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> Runtime:
    """Resolve the profile, pick the device, seed everything and show the banner once."""
    global _banner_shown
    resolved = resolve_profile(profile)
    runtime = Runtime(
        profile=resolved,
        offline=resolved == "full" and offline_requested(),
        device=select_device(device),
        seed=seed,
    )
    seed_everything(seed)
    if runtime.smoke and runtime.device.type == "cpu":
        # Smoke models are tiny: one thread beats a thread pool that synchronises on every
        # small matrix product, and stays fast when other processes share the cores.
        torch.set_num_threads(1)
    if runtime.synthetic and not _banner_shown:
        logger.warning(runtime.banner)
        _banner_shown = True
    return runtime


def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """One short TCP connection attempt; no data is sent."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_online(resource: str, host: str) -> None:
    """Fail fast, naming ``resource`` and the two ways out, when ``host`` is unreachable."""
    if host_reachable(host):
        return
    raise ResourceUnavailableError(
        f"The full profile needs {resource}, but {host} cannot be reached from this "
        "machine. Either run the small offline version with profile='smoke' (or "
        "DLDNA_PROFILE=smoke), or keep the full-size architectures with random weights "
        "and synthetic data by setting DLDNA_OFFLINE=1."
    )
