"""The layer of encoder-decoder stacks: self-attention, optional cross-attention, feed-forward,
each a residual sublayer normed before (pre-norm) or after (post-norm) the residual add."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.nn.attention import Attention
from lmhub.nn.cross_attention import CrossAttention
from lmhub.nn.encdec_cache import EncoderDecoderCache
from lmhub.nn.kv_cache import KVCache

NormOrder = Literal["pre", "post"]
NORM_ORDERS: tuple[str, ...] = ("pre", "post")


class EncoderDecoderLayer(nn.Module):
    """An encoder layer (no ``cross_attn``) or a decoder layer (with one).

    Pre-norm: ``x + drop(f(norm(x)))`` per sublayer (T5, NLLB); post-norm: ``norm(x +
    drop(f(x)))`` (Vaswani et al., 2017; fairseq2's ``base`` and ``big``). ``dropout_p`` drops out
    each sublayer's output in training.
    """

    def __init__(
        self,
        *,
        self_attn: Attention,
        self_attn_norm: nn.Module,
        ffn: nn.Module,
        ffn_norm: nn.Module,
        cross_attn: CrossAttention | None = None,
        cross_attn_norm: nn.Module | None = None,
        norm_order: NormOrder = "pre",
        dropout_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.self_attn_norm = self_attn_norm
        # None is a plain attribute, so encoder layers have no cross-attention keys.
        self.cross_attn = cross_attn
        self.cross_attn_norm = cross_attn_norm
        self.ffn = ffn
        self.ffn_norm = ffn_norm
        self.norm_order = norm_order
        self.dropout_p = dropout_p

    def _sublayer(
        self, x: torch.Tensor, norm: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        p = self.dropout_p if self.training else 0.0
        if self.norm_order == "pre":
            return x + F.dropout(fn(norm(x)), p=p, training=self.training)
        return norm(x + F.dropout(fn(x), p=p, training=self.training))

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``mask``/``is_causal``/``bias`` go to the self-attention (``bias``: T5's relative
        positions); ``memory`` (the encoder output) and ``memory_mask`` to the cross-attention."""
        x = self._sublayer(
            x,
            self.self_attn_norm,
            lambda h: self.self_attn(h, mask=mask, is_causal=is_causal, bias=bias, cache=cache),
        )
        if self.cross_attn is not None:
            assert memory is not None and self.cross_attn_norm is not None
            cross_cache = cache if isinstance(cache, EncoderDecoderCache) else None
            cross = self.cross_attn
            x = self._sublayer(
                x,
                self.cross_attn_norm,
                lambda h: cross(h, memory=memory, mask=memory_mask, cache=cross_cache),
            )
        return self._sublayer(x, self.ffn_norm, self.ffn)

    def extra_repr(self) -> str:
        return f"norm_order={self.norm_order}, dropout_p={self.dropout_p}"
