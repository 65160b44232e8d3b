"""Normalisation layers."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich, 2019), computed in float32 like Llama.

    With ``unit_offset`` the scale is ``1 + weight`` (Gemma): the weight is stored as an offset
    from one, starts at zeros, and the product is taken in float32 before casting back, as
    Gemma's reference does (Llama casts first, then scales).

    Example:
        >>> norm = RMSNorm(64, eps=1e-5)
        >>> norm(torch.randn(2, 3, 64)).shape
        torch.Size([2, 3, 64])
    """

    def __init__(
        self,
        dim: int,
        *,
        eps: float = 1e-6,
        elementwise_affine: bool = True,
        unit_offset: bool = False,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.unit_offset = unit_offset
        self.weight = nn.Parameter(torch.empty(dim)) if elementwise_affine else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set the scale to ones (the weight to zeros with ``unit_offset``)."""
        if self.weight is not None:
            nn.init.zeros_(self.weight) if self.unit_offset else nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        # Normalise in float32: the mean of squares underflows/overflows in half precision.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.unit_offset and self.weight is not None:
            return (h * (1.0 + self.weight.float())).to(dtype)
        h = h.to(dtype)
        return h if self.weight is None else self.weight * h

    def extra_repr(self) -> str:
        dim = None if self.weight is None else self.weight.shape[0]
        offset = ", unit_offset=True" if self.unit_offset else ""
        return f"{dim}, eps={self.eps}{offset}"
