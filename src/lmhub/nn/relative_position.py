"""T5's relative position buckets and the learned per-head bias read from them (Raffel et al.,
2020): near offsets get a bucket each, far ones share logarithmically wider buckets."""

from __future__ import annotations

import math

import torch
from torch import nn


def relative_position_bucket(
    relative_position: torch.Tensor, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Map ``key_pos - query_pos`` offsets to bucket ids in ``[0, num_buckets)``.

    Bidirectional (encoder) buckets spend half the range on keys after the query; a causal
    decoder only sees keys at or before the query, so all buckets go to those. Offsets of at
    least ``max_distance`` share the last bucket.

    Example:
        >>> relative_position_bucket(torch.tensor([-1, 0, 1]), bidirectional=True,
        ...                          num_buckets=32, max_distance=128)
        tensor([ 1,  0, 17])
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = -torch.clamp(relative_position, max=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Computed in float32 as in T5's reference, so bucket edges match its checkpoints exactly.
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).to(torch.long)
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Embedding):
    """One learned scalar per (bucket, head), added to the attention scores of every layer.

    The ``weight`` is ``[num_buckets, num_heads]`` (T5's ``relative_attention_bias``).

    Example:
        >>> bias = RelativePositionBias(32, 4, bidirectional=True, max_distance=128)
        >>> bias(q_len=3, kv_len=5).shape
        torch.Size([1, 4, 3, 5])
    """

    def __init__(
        self, num_buckets: int, num_heads: int, *, bidirectional: bool, max_distance: int
    ) -> None:
        super().__init__(num_buckets, num_heads)
        self.bidirectional = bidirectional
        self.max_distance = max_distance

    def forward(self, *, q_len: int, kv_len: int) -> torch.Tensor:  # type: ignore[override]
        """Return the bias ``[1, heads, q_len, kv_len]`` of the last ``q_len`` of ``kv_len``
        positions (a KV cache holds the others)."""
        device = self.weight.device
        q_pos = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
        k_pos = torch.arange(kv_len, device=device)[None, :]
        buckets = relative_position_bucket(
            k_pos - q_pos,
            bidirectional=self.bidirectional,
            num_buckets=self.num_embeddings,
            max_distance=self.max_distance,
        )
        return super().forward(buckets).permute(2, 0, 1)[None]

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, bidirectional={self.bidirectional}, "
            f"max_distance={self.max_distance}"
        )
