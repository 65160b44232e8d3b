"""A small head on one position's hidden state (the CLS position): a stop or length classifier."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CLSHead"]


class CLSHead(nn.Module):
    """``[batch, seq, dim]`` hidden states -> ``[batch, num_outputs]`` logits read at one position.

    A dense layer with a tanh (BERT's pooler) then a linear classifier. With ``num_outputs=1``
    it is a binary head (the insertion LM's stop logit); with more, a length or class head.

    Example:
        >>> head = CLSHead(8)
        >>> head(torch.zeros(2, 5, 8)).shape
        torch.Size([2, 1])
    """

    def __init__(self, dim: int, *, num_outputs: int = 1, position: int = 0) -> None:
        """``position``: the index of the CLS token in each row (0: the first)."""
        super().__init__()
        self.position = position
        self.dense = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, num_outputs)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, 0.02) weights, zero biases."""
        for linear in (self.dense, self.out):
            nn.init.normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        cls = hidden[:, self.position]
        return self.out(torch.tanh(self.dense(cls)))
