"""Absolute positions: default position ids, and learned position embeddings (GPT-2)."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.masks import positions_from_padding


class LearnedPositionEmbedding(nn.Embedding):
    """A table of ``max_seq_len`` trained position vectors, added to the token embeddings.

    It is an ``nn.Embedding`` (one ``weight`` of ``[max_seq_len, dim]``, as Hugging Face's
    ``wpe``) indexed by position ids, so left-padded rows can count real tokens only.

    Example:
        >>> pos = LearnedPositionEmbedding(1024, 64)
        >>> pos(torch.arange(5)[None]).shape
        torch.Size([1, 5, 64])
    """

    def __init__(self, max_seq_len: int, dim: int) -> None:
        super().__init__(max_seq_len, dim)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Return the vectors ``[..., dim]`` of integer ``position_ids`` (each below
        ``max_seq_len``; the table has nothing further)."""
        return super().forward(position_ids)


def default_positions(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, past: int
) -> torch.Tensor:
    """Positions after ``past`` cached ones; with a ``[batch, past + seq]`` padding mask they
    count real tokens only, as transformers' ``generate`` does, so a left-padded row is
    positioned as it would be alone."""
    b, s = input_ids.shape
    if attention_mask is not None and attention_mask.dim() == 2:
        return positions_from_padding(attention_mask)[:, past:]
    return torch.arange(past, past + s, device=input_ids.device).expand(b, s)
