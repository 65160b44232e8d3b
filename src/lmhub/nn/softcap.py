"""Soft-capping (Gemma 2): squash values smoothly into ``(-cap, cap)`` with a scaled tanh."""

from __future__ import annotations

import torch


def softcap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """Return ``cap * tanh(x / cap)``: close to ``x`` for ``|x| << cap``, never past ``cap``.

    Example:
        >>> softcap(torch.tensor([0.0, 1e9]), 30.0)
        tensor([ 0., 30.])
    """
    return torch.tanh(x / cap) * cap
