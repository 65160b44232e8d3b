"""Attention with Linear Biases (ALiBi; Press, Smith & Lewis, 2022).

Instead of a position table, every head ``h`` adds ``slope_h * (j - i)`` to the score of query
position ``i`` against key position ``j``. For past keys (``j <= i``) that is a penalty growing
linearly with distance; future keys are removed by the causal mask. The bias depends only on
distances, so a model runs on sequences longer than any it was trained on, works with a KV cache
(positions are absolute indices into cached + new keys), and is unchanged by left padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lmhub.nn.attention import Attention
from lmhub.nn.kv_cache import KVCache


def alibi_slopes(num_heads: int) -> list[float]:
    """Return the standard geometric ALiBi slopes of ``num_heads`` heads.

    For ``n`` a power of two the slopes are ``r, r^2, ..., r^n`` with ``r = 2^(-8/n)``. Otherwise
    the slopes of the largest power of two ``p < n`` come first, followed by every other slope of
    ``2p`` heads (``r'^1, r'^3, ...``) until there are ``n``, as in the paper's reference code.

    Example:
        >>> alibi_slopes(4)
        [0.25, 0.0625, 0.015625, 0.00390625]
    """
    if num_heads <= 0:
        raise ValueError(f"num_heads must be positive, not {num_heads}.")

    def geometric(n: int) -> list[float]:
        ratio = 2.0 ** (-8.0 / n)
        return [ratio ** (i + 1) for i in range(n)]

    power = 2 ** math.floor(math.log2(num_heads))
    slopes = geometric(power)
    if power < num_heads:
        slopes += geometric(2 * power)[0::2][: num_heads - power]
    return slopes


def alibi_bias(
    slopes: torch.Tensor, *, q_len: int, kv_len: int, device: torch.device | None = None
) -> torch.Tensor:
    """Return the bias ``-slope_h * |j - i|`` as ``[heads, q_len, kv_len]`` (float32 or wider).

    The queries are the last ``q_len`` of ``kv_len`` positions (a KV cache holds the rest), so
    query ``i`` sits at position ``kv_len - q_len + i``. Past keys get ALiBi's ``slope * (j - i)``;
    future keys, which only bidirectional (non-causal) attention sees, are penalised by their
    distance the same way (symmetric ALiBi, as bidirectional encoders use it). A bias that grew
    with the distance to future keys would pull every non-causal query onto the last tokens.

    Example:
        >>> alibi_bias(torch.tensor([0.5]), q_len=2, kv_len=3)
        tensor([[[-0.5000, -0.0000, -0.5000],
                 [-1.0000, -0.5000, -0.0000]]])
    """
    device = device if device is not None else slopes.device
    # Distances in float32 even for half-precision slopes: (j - i) reaches the sequence length.
    dtype = torch.promote_types(slopes.dtype, torch.float32)
    q_pos = torch.arange(kv_len - q_len, kv_len, device=device, dtype=dtype)
    k_pos = torch.arange(kv_len, device=device, dtype=dtype)
    distance = -(k_pos[None, :] - q_pos[:, None]).abs()
    return slopes.to(dtype)[:, None, None] * distance[None]


class AlibiBias(nn.Module):
    """Per-head ALiBi slopes (trainable or fixed) and the score bias they give.

    ``forward(q_len, kv_len)`` returns ``[1, heads, q_len, kv_len]``, ready to pass as ``bias=`` to
    :func:`lmhub.nn.attention.scaled_dot_product_attention` (it broadcasts over the batch).

    Example:
        >>> alibi = AlibiBias(8)                  # slopes 1/2, 1/4, ..., 1/256
        >>> alibi(q_len=1, kv_len=5).shape        # one new token over four cached ones
        torch.Size([1, 8, 1, 5])
    """

    def __init__(
        self,
        num_heads: int,
        *,
        trainable: bool = True,
        init_slopes: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if init_slopes is not None and len(init_slopes) != num_heads:
            raise ValueError(
                f"init_slopes has {len(init_slopes)} values but there are {num_heads} heads."
            )
        self.num_heads = num_heads
        self.init_slopes = (
            tuple(float(s) for s in init_slopes)
            if init_slopes is not None
            else tuple(alibi_slopes(num_heads))
        )
        # A parameter even when fixed, so that checkpoints hold the slopes either way.
        self.slopes = nn.Parameter(torch.empty(num_heads), requires_grad=trainable)
        if not self.slopes.is_meta:
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Set the slopes to their initial values."""
        self.slopes.copy_(torch.tensor(self.init_slopes, dtype=self.slopes.dtype))

    def forward(self, q_len: int, kv_len: int) -> torch.Tensor:
        return alibi_bias(self.slopes, q_len=q_len, kv_len=kv_len)[None]

    def extra_repr(self) -> str:
        return f"{self.num_heads}, trainable={self.slopes.requires_grad}"


class AlibiAttention(Attention):
    """Grouped-query attention whose scores get an ALiBi bias, one slope per query head.

    It takes the arguments of :class:`~lmhub.nn.attention.Attention` plus ``trainable_alibi``,
    and adds the parameter ``alibi.slopes``. Key positions count what ``cache`` holds.

    Example:
        >>> attn = AlibiAttention(64, num_heads=4, num_kv_heads=2, head_dim=16)
        >>> attn(torch.randn(1, 5, 64), is_causal=True).shape
        torch.Size([1, 5, 64])
    """

    def __init__(self, model_dim: int, *, trainable_alibi: bool = True, **kwargs: Any) -> None:
        super().__init__(model_dim, **kwargs)
        self.alibi = AlibiBias(self.num_heads, trainable=trainable_alibi)

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s = x.shape[1]
        past = cache.seq_len if cache is not None else 0
        alibi = self.alibi(s, past + s)
        bias = alibi if bias is None else bias + alibi
        return super().forward(x, rope=rope, mask=mask, is_causal=is_causal, cache=cache, bias=bias)
