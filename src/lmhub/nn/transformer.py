"""Transformer layers assembled from the shared blocks."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.attention import Attention
from lmhub.nn.kv_cache import KVCache


class PreNormDecoderLayer(nn.Module):
    """``x + attn(norm(x))`` then ``h + ffn(norm(h))``: the Llama/Mistral/Qwen layer."""

    def __init__(
        self, *, attn_norm: nn.Module, attn: Attention, ffn_norm: nn.Module, ffn: nn.Module
    ) -> None:
        super().__init__()
        self.attn_norm = attn_norm
        self.attn = attn
        self.ffn_norm = ffn_norm
        self.ffn = ffn

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        h = x + self.attn(self.attn_norm(x), rope=rope, mask=mask, is_causal=is_causal, cache=cache)
        return h + self.ffn(self.ffn_norm(h))
