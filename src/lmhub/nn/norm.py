"""Normalisation layers."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich, 2019), computed in float32 like Llama.

    Example:
        >>> norm = RMSNorm(64, eps=1e-5)
        >>> norm(torch.randn(2, 3, 64)).shape
        torch.Size([2, 3, 64])
    """

    def __init__(self, dim: int, *, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim)) if elementwise_affine else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set the scale to ones."""
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        # Normalise in float32: the mean of squares underflows/overflows in half precision.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        h = h.to(dtype)
        return h if self.weight is None else self.weight * h

    def extra_repr(self) -> str:
        dim = None if self.weight is None else self.weight.shape[0]
        return f"{dim}, eps={self.eps}"
