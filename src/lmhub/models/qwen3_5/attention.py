"""Qwen3.5's full-attention layer: grouped-query attention whose output is gated per channel.

The query projection is twice as wide: for each head, ``head_dim`` query channels then
``head_dim`` gate channels. The attention output is multiplied by ``sigmoid(gate)`` before the
output projection (as in Qwen3-Next).
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.attention import Attention, repeat_kv, scaled_dot_product_attention
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.rope import apply_rotary


class GatedAttention(Attention):
    """:class:`~lmhub.nn.attention.Attention` with a sigmoid output gate from the query
    projection (same arguments; ``q_proj`` is ``2 * num_heads * head_dim`` wide)."""

    def __init__(self, model_dim: int, **kwargs: object) -> None:
        super().__init__(model_dim, **kwargs)  # type: ignore[arg-type]
        self.q_proj = nn.Linear(
            model_dim, 2 * self.num_heads * self.head_dim, bias=self.q_proj.bias is not None
        )

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
        b, s, _ = x.shape
        d = self.head_dim
        q, gate = self.q_proj(x).view(b, s, -1, 2 * d).split(d, dim=-1)
        q = q.transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, d).transpose(1, 2)
        v = self.v_proj(x).view(b, s, -1, d).transpose(1, 2)
        q, k = self.norm_qk(q, k)
        if rope is not None:
            q, k = apply_rotary(q, k, *rope)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)
        n_rep = q.shape[1] // k.shape[1]
        out = scaled_dot_product_attention(
            q,
            repeat_kv(k, n_rep),
            repeat_kv(v, n_rep),
            mask=mask,
            bias=bias,
            is_causal=is_causal and mask is None,
            scale=self.scale,
            dropout_p=self.dropout_p if self.training else 0.0,
            impl=self.attn_impl,
        )
        out = out.transpose(1, 2).reshape(b, s, -1) * torch.sigmoid(gate.reshape(b, s, -1))
        return self.o_proj(out)
