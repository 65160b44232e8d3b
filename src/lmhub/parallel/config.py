"""The ``parallel:`` section of a training config: how the processes torchrun started split up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ParallelConfig"]


@dataclass(kw_only=True)
class ParallelConfig:
    """The mesh of a run under torchrun (``world size = dp_replicate x dp_shard x tp_size``).

    One process (no torchrun) is the world of one: every size is 1 and nothing is sharded.
    """

    tp_size: int = 1
    """Tensor-parallel peers each layer's weights are split over (the family's TP plan)."""
    dp_shard: int = -1
    """Data-parallel ranks each replica's parameters, gradients and optimizer state are sharded
    over with FSDP2 (``-1``: what the world size leaves)."""
    dp_replicate: int = 1
    """Data-parallel replicas (HSDP: each replica shards over ``dp_shard`` ranks)."""
    mixed_precision: Literal["off", "bf16"] = "off"
    """``bf16``: FSDP2's ``MixedPrecisionPolicy`` with bf16 parameters for compute and fp32
    gradient reduction (the sharded weights and the optimizer stay fp32); ``off``: fp32
    throughout. Applies FSDP2 even at one data-parallel rank."""
