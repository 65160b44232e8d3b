"""Sinusoidal positions in tensor2tensor's layout, as fairseq2 and M2M100/NLLB compute them.

The first half of the channels holds sines and the second half cosines, with frequencies
``10000^(-i / (half - 1))``; positions of real tokens start at an offset (fairseq's legacy
padding index + 1). :func:`lmhub.models.causal_lm.model.sinusoidal_positions` is the paper's
interleaved layout, which trained checkpoints of this lineage do not use.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def half_split_sinusoids(position_ids: torch.Tensor, dim: int) -> torch.Tensor:
    """Return float32 encodings ``[..., dim]``: ``sin`` in the first ``dim // 2`` channels,
    ``cos`` in the next ``dim // 2`` (a zero channel last when ``dim`` is odd).

    Example:
        >>> half_split_sinusoids(torch.tensor([0]), 4)
        tensor([[0., 0., 1., 1.]])
    """
    half = dim // 2
    step = math.log(10_000.0) / max(half - 1, 1)
    freqs = torch.exp(
        torch.arange(half, dtype=torch.int64, device=position_ids.device).float() * -step
    )
    angles = position_ids.float()[..., None] * freqs
    out = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(out, (0, dim % 2))
