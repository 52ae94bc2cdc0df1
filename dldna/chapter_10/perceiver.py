"""Perceiver (Jaegle et al., 2021) and a full self-attention baseline, with a cost meter.

A Transformer's self-attention over ``N`` inputs costs ``O(N^2)``. The Perceiver keeps a
small learnable *latent array* of ``M`` vectors (``M << N``): one cross-attention lets the
latents read the inputs (``O(M N)``), and the deep part is self-attention among the
latents only (``O(M^2)``, independent of ``N``). Erratum 5: the original listing did
not run (undefined input size, cross-attention commented out); this one runs and is tested.

Inputs are a generic sequence ``[B, N, input_dim]`` (pixels, patches, audio frames,
tokens...). The architecture has no notion of order, so position information must be
part of the input features (the paper concatenates Fourier features).
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn

from dldna.chapter_10.layers import masked_mean
from dldna.chapter_10.vit import LN_EPS, MLP, Attention, Block, init_linear, padding_mask_to_attn_mask

logger = logging.getLogger(__name__)


@dataclass
class PerceiverConfig:
    """Sizes of a Perceiver classifier. ``input_dim`` is the size of one input element."""

    input_dim: int
    latent_dim: int = 256
    num_latents: int = 64
    num_heads: int = 4
    num_self_attn_layers: int = 2
    num_classes: int = 10
    dropout: float = 0.0
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        if self.input_dim <= 0:
            raise ValueError(
                f"input_dim must be positive (the feature size of one input element); got {self.input_dim}."
            )
        if self.latent_dim % self.num_heads != 0:
            raise ValueError(
                f"latent_dim ({self.latent_dim}) must be divisible by num_heads ({self.num_heads})."
            )


def _check_inputs(inputs: torch.Tensor, input_dim: int) -> None:
    if inputs.ndim != 3 or inputs.shape[-1] != input_dim:
        raise ValueError(
            f"Expected inputs of shape [batch, length, {input_dim}]; got {tuple(inputs.shape)}. "
            f"Flatten images/audio into a sequence of feature vectors first."
        )


class CrossAttentionBlock(nn.Module):
    """Latents (queries) read the inputs (keys/values), then an MLP; pre-norm, residual."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_latents = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm_inputs = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, mlp_dim, dropout)

    def forward(
        self,
        latents: torch.Tensor,
        inputs: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.attn(self.norm_latents(latents), self.norm_inputs(inputs), attn_mask, return_weights)
        out, weights = out if return_weights else (out, None)  # weights: [B, H, M, N]
        latents = latents + out
        return latents + self.mlp(self.norm_mlp(latents)), weights


class Perceiver(nn.Module):
    """Perceiver classifier: input projection, cross-attention to a latent array, latent
    self-attention blocks, mean over latents, linear head."""

    def __init__(self, config: PerceiverConfig) -> None:
        super().__init__()
        self.config = c = config
        mlp_dim = c.mlp_ratio * c.latent_dim
        self.input_proj = nn.Linear(c.input_dim, c.latent_dim)
        self.latents = nn.Parameter(
            torch.empty(c.num_latents, c.latent_dim).normal_(std=0.02)
        )
        self.cross = CrossAttentionBlock(c.latent_dim, c.num_heads, mlp_dim, c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.latent_dim, c.num_heads, mlp_dim, c.dropout)
            for _ in range(c.num_self_attn_layers)
        )
        self.norm = nn.LayerNorm(c.latent_dim, eps=LN_EPS)
        self.head = nn.Linear(c.latent_dim, c.num_classes)
        self.apply(init_linear)

    def forward_latents(
        self,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Final latent array ``[B, M, latent_dim]`` and, if asked, the weights.

        The latents are what Perceiver IO decodes from; the cross-attention weights
        are ``[B, heads, M, N]``.
        """
        _check_inputs(inputs, self.config.input_dim)
        x = self.input_proj(inputs)  # [B, N, D]
        latents = self.latents.expand(inputs.shape[0], -1, -1)  # [B, M, D]
        attn_mask = padding_mask_to_attn_mask(attention_mask)  # [B, N] or None
        latents, weights = self.cross(latents, x, attn_mask, return_attention)
        for block in self.blocks:
            latents = block(latents)  # [B, M, D], cost independent of N
        return self.norm(latents), weights

    def forward(
        self,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, num_classes]``.

        ``attention_mask [B, N]`` marks real inputs with 1.
        """
        latents, weights = self.forward_latents(
            inputs, attention_mask, return_attention
        )
        logits = self.head(latents.mean(dim=1))  # [B, C]
        return (logits, weights) if return_attention else logits


class FullSelfAttentionClassifier(nn.Module):
    """Baseline: a standard Transformer encoder over *all* inputs (``O(N^2)`` attention).

    Built from the same :class:`PerceiverConfig` for a fair comparison: width
    ``latent_dim``, the same heads and MLP, and ``num_self_attn_layers + 1`` blocks (the
    Perceiver's cross-attention counts as one layer).
    """

    def __init__(self, config: PerceiverConfig) -> None:
        super().__init__()
        self.config = c = config
        self.input_proj = nn.Linear(c.input_dim, c.latent_dim)
        self.blocks = nn.ModuleList(
            Block(c.latent_dim, c.num_heads, c.mlp_ratio * c.latent_dim, c.dropout)
            for _ in range(c.num_self_attn_layers + 1)
        )
        self.norm = nn.LayerNorm(c.latent_dim, eps=LN_EPS)
        self.head = nn.Linear(c.latent_dim, c.num_classes)
        self.apply(init_linear)

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_inputs(inputs, self.config.input_dim)
        x = self.input_proj(inputs)  # [B, N, D]
        attn_mask = padding_mask_to_attn_mask(attention_mask)
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)  # [B, N, D], every input attends to every input
        return self.head(masked_mean(self.norm(x), attn_mask))  # [B, C], mean over real inputs


# ----------------------------------------------------------------------------- cost meter


def _rss_bytes() -> int | None:
    """Resident set size of this process, or None where it cannot be read."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


class _PeakRSS:
    """Sample the process RSS every half millisecond in a thread; ``peak`` is the max seen.

    Torch kernels release the GIL, so the sampler runs while the forward pass computes.
    Where RSS cannot be read, ``delta_mb`` is NaN.
    """

    def __enter__(self) -> _PeakRSS:
        self.base = _rss_bytes()
        self.peak = self.base or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.base is not None:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() or 0)
            time.sleep(0.0005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.peak = max(self.peak, _rss_bytes() or 0)

    @property
    def delta_mb(self) -> float:
        return float("nan") if self.base is None else (self.peak - self.base) / 2**20


def _sdpa_context(backend: str | None):
    if backend is None:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {name.lower(): b for name, b in SDPBackend.__members__.items() if name != "ERROR"}
    if backend.lower() not in names:
        raise ValueError(f"Unknown attention_backend {backend!r}; choose one of {sorted(names)} or None.")
    return sdpa_kernel(names[backend.lower()])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure_cost(
    models: Mapping[str, nn.Module | Callable[[], nn.Module]],
    lengths: Sequence[int],
    batch_size: int = 8,
    input_dim: int | None = None,
    device: str | torch.device = "cpu",
    repeats: int = 3,
    warmup: int = 1,
    attention_backend: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Time (median of ``repeats`` runs) and peak memory of one inference forward pass
    per model and input length.

    ``models`` maps a name to a module or to a zero-argument factory returning one.
    ``input_dim`` defaults to the models' ``config.input_dim``. Returns one row per
    (model, length) with columns ``model, length, ms_per_forward, peak_mem_mb``.

    Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` minus the memory allocated
    before the pass (exact tensor memory). On the CPU, the growth of the process's
    resident set size (RSS), sampled in a background thread during one pass (tracemalloc
    cannot see PyTorch's allocations). RSS is approximate: the C allocator reuses memory it
    already holds, so allocations of a few MB may read as ~0; the large ones (the
    ``N x N`` score matrices) show clearly. ``df.attrs["peak_mem_method"]`` says which.

    ``attention_backend`` (e.g. ``"math"``, ``"flash_attention"``) forces a
    ``scaled_dot_product_attention`` kernel: fused kernels never store the ``N x N``
    matrix, so their memory grows linearly even though their time grows quadratically.
    """
    device = torch.device(device)
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0.")
    method = "cuda.max_memory_allocated" if device.type == "cuda" else "process RSS delta (sampled)"
    rows = []
    for name, entry in models.items():
        model = entry if isinstance(entry, nn.Module) else entry()
        model = model.to(device).eval()
        dim = (
            input_dim if input_dim is not None else getattr(getattr(model, "config", None), "input_dim", None)
        )
        if dim is None:
            raise ValueError(f"Cannot tell the input size of model {name!r}: pass input_dim=...")
        generator = torch.Generator().manual_seed(seed)
        for length in lengths:
            x = torch.randn(batch_size, int(length), dim, generator=generator).to(device)  # [B, N, input_dim]
            with _sdpa_context(attention_backend):
                for _ in range(warmup):
                    model(x)
                _sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                    model(x)
                    _sync(device)
                    peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
                else:
                    with _PeakRSS() as meter:
                        model(x)
                    peak_mb = meter.delta_mb
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    model(x)
                    _sync(device)
                    times.append((time.perf_counter() - start) * 1000)
                ms = statistics.median(times)
            logger.info("%s N=%d: %.2f ms, %.1f MB", name, length, ms, peak_mb)
            rows.append({"model": name, "length": int(length), "ms_per_forward": ms, "peak_mem_mb": peak_mb})
    frame = pd.DataFrame(rows, columns=["model", "length", "ms_per_forward", "peak_mem_mb"])
    frame.attrs["peak_mem_method"] = method
    frame.attrs["batch_size"] = batch_size
    frame.attrs["device"] = str(device)
    return frame
