"""Learning-rate, weight-decay and EMA schedules as pure functions of the step.

All three reach their final value exactly at the last step of the run (the original code
stretches them by an `ipe_scale` factor so they end past the run; this one does not). Being pure
functions, they need no state in the checkpoint beyond the step itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from train.config import OptimConfig


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

    @property
    def last_step(self) -> int:
        return self.total_steps - 1

    def lr(self, step: int) -> float:
        """Linear warmup start_lr -> lr over warmup_steps, then cosine to final_lr."""
        o = self.optim
        if step < o.warmup_steps:
            return linear(step, 0, o.warmup_steps, o.start_lr, o.lr)
        return cosine(step, o.warmup_steps, self.last_step, o.lr, o.final_lr)

    def weight_decay(self, step: int) -> float:
        o = self.optim
        return cosine(step, 0, self.last_step, o.weight_decay, o.final_weight_decay)

    def ema(self, step: int) -> float:
        start, end = self.optim.ema
        return linear(step, 0, self.last_step, start, end)
