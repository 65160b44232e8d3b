"""Learning-rate schedules: a linear warmup, then cosine, linear or constant down to a floor.

A schedule is a pure function of the step, so resuming needs only the step count.

Example:
    >>> schedule = LrSchedule(kind="cosine", peak_lr=1.0, warmup_steps=2, total_steps=10)
    >>> [round(schedule(s), 3) for s in (1, 2, 10)]
    [0.5, 1.0, 0.1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["LrSchedule"]


@dataclass(frozen=True, kw_only=True)
class LrSchedule:
    """The learning rate of optimiser step ``step`` (counted from 1)."""

    kind: Literal["cosine", "linear", "constant"]
    """The shape after the warmup."""
    peak_lr: float
    """The rate at the end of the warmup."""
    warmup_steps: int
    """Steps of linear warmup: step ``s <= warmup_steps`` uses ``peak_lr * s / warmup_steps``."""
    total_steps: int
    """The last step, where a decay reaches the floor."""
    min_lr_ratio: float = 0.1
    """The floor, as a fraction of ``peak_lr``."""

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step <= self.warmup_steps:
            return self.peak_lr * step / self.warmup_steps
        if self.kind == "constant":
            return self.peak_lr
        floor = self.peak_lr * self.min_lr_ratio
        span = self.total_steps - self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / span) if span > 0 else 1.0
        if self.kind == "linear":
            factor = 1.0 - progress
        else:
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        return floor + (self.peak_lr - floor) * factor
