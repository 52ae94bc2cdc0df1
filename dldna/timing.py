"""How long a training run will take, measured on its own first steps.

A reader who starts a notebook on a free GPU, or on a laptop, should know within seconds
whether the chosen settings take one minute or three hours. :class:`ExpectedRunTime`
times the first steps of the real run (after a warm-up step, which pays for lazy
initialisation and kernel selection) and announces the extrapolation once::

    eta = ExpectedRunTime(epochs * steps_per_epoch, "ViT fine-tuning", device)
    for epoch in range(epochs):
        for batch in loader:
            ...  # one optimisation step
            eta.tick()

The announcement goes to the ``dldna.timing`` logger at INFO level; :func:`show_in_notebook`
(called by :func:`dldna.runtime.setup`) lets that one logger print to the notebook.
"""

from __future__ import annotations

import logging
import sys
import time

import torch

from dldna.params import check_params, non_negative_int, positive_int

__all__ = ["ExpectedRunTime", "format_duration", "show_in_notebook"]

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"2 h 05 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest:02d} min"


class ExpectedRunTime:
    """Announce once how long ``total_steps`` steps will take, from the first few.

    ``tick()`` after every step. The first ``warmup_steps`` (at least one: the clock
    starts when it ends) are not timed; the next
    ``probe_steps`` are, and their mean time times ``total_steps`` is announced. The
    same object can be handed to several loops (the ablation trains many versions): it
    announces once, for all their steps. ``fixed_seconds`` adds work outside the steps
    (evaluation, for instance) when it is known beforehand.
    """

    def __init__(
        self,
        total_steps: int,
        what: str = "training",
        device: torch.device | str | None = None,
        warmup_steps: int = 1,
        probe_steps: int = 3,
        fixed_seconds: float = 0.0,
    ) -> None:
        check_params(
            total_steps=(total_steps, non_negative_int),
            warmup_steps=(warmup_steps, positive_int),
            probe_steps=(probe_steps, positive_int),
        )
        self.total_steps = int(total_steps)
        self.what = what
        self.device = torch.device(device) if device is not None else None
        self.warmup_steps = int(warmup_steps)
        self.probe_steps = int(probe_steps)
        self.fixed_seconds = float(fixed_seconds)
        self.steps = 0
        self.seconds_per_step: float | None = None
        self._started: float | None = None

    def _now(self) -> float:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # GPU steps are asynchronous
        return time.perf_counter()

    @property
    def announced(self) -> bool:
        return self.seconds_per_step is not None

    @property
    def expected_seconds(self) -> float | None:
        """Seconds the whole run is expected to take, once measured."""
        if self.seconds_per_step is None:
            return None
        return self.total_steps * self.seconds_per_step + self.fixed_seconds

    def tick(self) -> None:
        """Count one finished step; announce when the probe steps are done."""
        if self.announced:
            return
        self.steps += 1
        if self.steps == self.warmup_steps:
            self._started = self._now()
        elif self.steps == self.warmup_steps + self.probe_steps:
            self.seconds_per_step = (self._now() - self._started) / self.probe_steps
            logger.info("%s", self)

    def __str__(self) -> str:
        if self.seconds_per_step is None:
            return f"Expected time for {self.what}: not measured yet ({self.steps} step(s) so far)."
        where = f" on {self.device}" if self.device is not None else ""
        return (
            f"Expected time for {self.what}{where}: about {format_duration(self.expected_seconds)} "
            f"({self.total_steps} steps x {self.seconds_per_step:.3g} s, "
            f"measured over steps {self.warmup_steps + 1}-{self.warmup_steps + self.probe_steps})."
        )


_notebook_handler: logging.Handler | None = None


def show_in_notebook() -> None:
    """Let the ``dldna.timing`` announcements print to standard output, once.

    Library loggers stay silent by default (Python shows only warnings without a
    handler); this one logger is the exception, because its single line is meant for the
    reader who just started a run. Applications that configure logging themselves can
    remove the handler again (``logging.getLogger("dldna.timing").handlers.clear()``).
    """
    global _notebook_handler
    if _notebook_handler is not None or logger.handlers:
        return
    _notebook_handler = logging.StreamHandler(sys.stdout)
    _notebook_handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_notebook_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
