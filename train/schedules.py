"""Learning-rate, weight-decay and EMA schedules as pure functions of the step.

All three reach their final value exactly at the last step of the run (the original code
stretches them by an `ipe_scale` factor so they end past the run; this one does not). Being pure
functions, they need no state in the checkpoint beyond the step itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from train.config import ConfigError, OptimConfig


def _progress(step: int, start: int, end: int) -> float:
    """0 at `start`, 1 at `end` (the last step), clamped."""
    if end <= start:
        return 1.0
    return min(1.0, max(0.0, (step - start) / (end - start)))


def cosine(step: int, start: int, end: int, begin_value: float, end_value: float) -> float:
    t = _progress(step, start, end)
    return end_value + 0.5 * (begin_value - end_value) * (1.0 + math.cos(math.pi * t))


def linear(step: int, start: int, end: int, begin_value: float, end_value: float) -> float:
    return begin_value + _progress(step, start, end) * (end_value - begin_value)


@dataclass(frozen=True)
class Schedules:
    optim: OptimConfig
    total_steps: int

    def __post_init__(self) -> None:
        o = self.optim
        if o.lr_schedule == "warmup_constant_cooldown" and not (
            0 < o.cooldown_steps <= self.total_steps - o.warmup_steps
        ):
            raise ConfigError(
                f"optim.cooldown_steps={o.cooldown_steps} must lie in [1, steps - "
                f"optim.warmup_steps = {self.total_steps - o.warmup_steps}] for "
                f"optim.lr_schedule=warmup_constant_cooldown"
            )

    @property
    def last_step(self) -> int:
        return self.total_steps - 1

    def lr(self, step: int) -> float:
        """Linear warmup start_lr -> lr over warmup_steps, then either cosine to final_lr at the
        last step, or lr held until the cooldown, which falls linearly to final_lr at the last
        step (the cooldown's first step is still at lr)."""
        o = self.optim
        if step < o.warmup_steps:
            return linear(step, 0, o.warmup_steps, o.start_lr, o.lr)
        if o.lr_schedule == "warmup_constant_cooldown":
            cooldown_start = self.total_steps - o.cooldown_steps
            return linear(step, cooldown_start, self.last_step, o.lr, o.final_lr)
        return cosine(step, o.warmup_steps, self.last_step, o.lr, o.final_lr)

    def weight_decay(self, step: int) -> float:
        o = self.optim
        return cosine(step, 0, self.last_step, o.weight_decay, o.final_weight_decay)

    def ema(self, step: int) -> float:
        start, end = self.optim.ema
        return linear(step, 0, self.last_step, start, end)
