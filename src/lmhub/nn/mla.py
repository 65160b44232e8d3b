"""Multi-head latent attention (MLA; DeepSeek-V2, 2024, and DeepSeek-V3).

Keys and values of every head are decompressed from one small per-token latent: the input is
projected down to ``kv_lora_rank`` (``kv_a_proj``, which also emits one ``qk_rope_dim``-wide
rotary key shared by all heads), RMS-normalised (``kv_a_norm``), and projected up to the heads'
non-rotary keys and values (``kv_b_proj``). Queries go through their own low-rank bottleneck
(``q_a_proj`` -> ``q_a_norm`` -> ``q_b_proj``) unless ``q_lora_rank`` is ``None`` (DeepSeek-V2
Lite: one ``q_proj``). Each query/key head is ``qk_nope_dim`` non-rotary dimensions followed by
``qk_rope_dim`` rotary ones; values are ``v_head_dim`` wide.

The KV cache holds what the layer needs to rebuild keys and values, not the keys and values:
the normalised latent ``[batch, 1, seq, kv_lora_rank]`` as the cache's "keys" and the rotated
shared key ``[batch, 1, seq, qk_rope_dim]`` as its "values" (as transformers' DeepSeek-V3 does).
Per token and layer that is ``kv_lora_rank + qk_rope_dim`` numbers (576 for DeepSeek-V3), where
a grouped-query cache of the same heads stores ``kv_heads * (qk_head_dim + v_head_dim)``
(40,960 for 128 heads of 192 + 128): :func:`mla_cache_ratio`.

Parameter names follow transformers' ``DeepseekV3Attention`` except the two shortened ones
(``kv_a_proj`` for ``kv_a_proj_with_mqa``, ``*_norm`` for ``*_layernorm``).
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.attention import scaled_dot_product_attention
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import apply_rotary


def apply_interleaved_rotary(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``q``/``k`` ``[batch, heads, seq, dim]`` whose dimensions pair up as ``(x0, x1),
    (x2, x3), ...`` (DeepSeek's checkpoints), by ``cos``/``sin`` ``[batch, seq, dim]`` from
    :class:`~lmhub.nn.rope.RotaryEmbedding` (whose halves repeat the per-pair angles).

    The output is de-interleaved, rotated evens then rotated odds, as transformers returns it:
    a rotate-half layout, so dot products (and cached keys) agree with the reference bit for bit.
    """
    half = cos.shape[-1] // 2
    c, s = cos[..., :half].unsqueeze(1), sin[..., :half].unsqueeze(1)

    def rotate(x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    return rotate(q), rotate(k)


def mla_cache_ratio(
    *, num_kv_heads: int, qk_head_dim: int, v_head_dim: int, kv_lora_rank: int, qk_rope_dim: int
) -> float:
    """How many times smaller an MLA cache is than a grouped-query cache of the same heads.

    >>> round(mla_cache_ratio(num_kv_heads=128, qk_head_dim=192, v_head_dim=128,
    ...                       kv_lora_rank=512, qk_rope_dim=64), 1)
    71.1
    """
    return num_kv_heads * (qk_head_dim + v_head_dim) / (kv_lora_rank + qk_rope_dim)


class MultiHeadLatentAttention(nn.Module):
    """Multi-head latent attention (see the module docstring).

    ``interleaved_rope`` reads the rotary dimensions as interleaved pairs (DeepSeek-V3's
    ``rope_interleave``); otherwise they are rotate-half. ``scale`` replaces the usual
    ``qk_head_dim ** -0.5`` (DeepSeek's YaRN multiplies it by ``mscale ** 2``).

    Example:
        >>> mla = MultiHeadLatentAttention(64, num_heads=4, q_lora_rank=32, kv_lora_rank=16,
        ...                                qk_nope_dim=16, qk_rope_dim=8, v_head_dim=16)
        >>> rope = RotaryEmbedding(8, theta=1e4, max_seq_len=32)
        >>> mla(torch.randn(1, 5, 64), rope=rope(torch.arange(5)[None], torch.float32),
        ...     is_causal=True).shape
        torch.Size([1, 5, 64])
    """

    def __init__(
        self,
        model_dim: int,
        *,
        num_heads: int,
        q_lora_rank: int | None,
        kv_lora_rank: int,
        qk_nope_dim: int,
        qk_rope_dim: int,
        v_head_dim: int,
        bias: bool = False,
        norm_eps: float = 1e-6,
        interleaved_rope: bool = True,
        scale: float | None = None,
        dropout_p: float = 0.0,
        attn_impl: str = "sdpa",
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.kv_lora_rank = kv_lora_rank
        self.qk_nope_dim = qk_nope_dim
        self.qk_rope_dim = qk_rope_dim
        self.v_head_dim = v_head_dim
        self.interleaved_rope = interleaved_rope
        self.scale = scale if scale is not None else (qk_nope_dim + qk_rope_dim) ** -0.5
        self.dropout_p = dropout_p
        self.attn_impl = attn_impl
        self.layer_idx = layer_idx
        qk_head_dim = qk_nope_dim + qk_rope_dim
        # None is a plain attribute, so either query path keeps its own state-dict keys.
        self.q_proj: nn.Linear | None = None
        self.q_a_proj: nn.Linear | None = None
        self.q_a_norm: RMSNorm | None = None
        self.q_b_proj: nn.Linear | None = None
        if q_lora_rank is None:
            self.q_proj = nn.Linear(model_dim, num_heads * qk_head_dim, bias=False)
        else:
            self.q_a_proj = nn.Linear(model_dim, q_lora_rank, bias=bias)
            self.q_a_norm = RMSNorm(q_lora_rank, eps=norm_eps)
            self.q_b_proj = nn.Linear(q_lora_rank, num_heads * qk_head_dim, bias=False)
        self.kv_a_proj = nn.Linear(model_dim, kv_lora_rank + qk_rope_dim, bias=bias)
        self.kv_a_norm = RMSNorm(kv_lora_rank, eps=norm_eps)
        self.kv_b_proj = nn.Linear(kv_lora_rank, num_heads * (qk_nope_dim + v_head_dim), bias=False)
        self.o_proj = nn.Linear(num_heads * v_head_dim, model_dim, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Attend over ``x`` ``[batch, seq, dim]`` and what ``cache`` holds; ``rope`` is the
        ``(cos, sin)`` of the ``qk_rope_dim`` rotary dimensions (required)."""
        if rope is None:
            raise ValueError("Multi-head latent attention needs the rotary (cos, sin) tables.")
        b, s, _ = x.shape
        if self.q_proj is not None:
            q = self.q_proj(x)
        else:
            assert self.q_a_proj is not None and self.q_a_norm is not None
            assert self.q_b_proj is not None
            q = self.q_b_proj(self.q_a_norm(self.q_a_proj(x)))
        q = q.view(b, s, -1, self.qk_nope_dim + self.qk_rope_dim).transpose(1, 2)
        q_nope, q_rot = q.split([self.qk_nope_dim, self.qk_rope_dim], dim=-1)

        latent, k_rot = self.kv_a_proj(x).split([self.kv_lora_rank, self.qk_rope_dim], dim=-1)
        latent = self.kv_a_norm(latent).view(b, 1, s, self.kv_lora_rank)
        k_rot = k_rot.reshape(b, 1, s, self.qk_rope_dim)
        rotate = apply_interleaved_rotary if self.interleaved_rope else apply_rotary
        q_rot, k_rot = rotate(q_rot, k_rot, *rope)
        if cache is not None:
            # The compressed latent and the shared rotary key are all a position needs.
            latent, k_rot = cache.update(self.layer_idx, latent, k_rot)

        kv = self.kv_b_proj(latent).view(b, latent.shape[2], -1, self.qk_nope_dim + self.v_head_dim)
        k_nope, v = kv.transpose(1, 2).split([self.qk_nope_dim, self.v_head_dim], dim=-1)
        heads = k_nope.shape[1]  # from the shapes: under TP each rank holds a share
        k = torch.cat([k_nope, k_rot.expand(-1, heads, -1, -1)], dim=-1)
        q = torch.cat([q_nope, q_rot], dim=-1)
        out = scaled_dot_product_attention(
            q,
            k,
            v,
            mask=mask,
            is_causal=is_causal and mask is None,
            scale=self.scale,
            dropout_p=self.dropout_p if self.training else 0.0,
            impl=self.attn_impl,
        )
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))

    def extra_repr(self) -> str:
        return (
            f"layer_idx={self.layer_idx}, heads={self.num_heads}, "
            f"kv_lora_rank={self.kv_lora_rank}, qk_nope_dim={self.qk_nope_dim}, "
            f"qk_rope_dim={self.qk_rope_dim}, "
            f"v_head_dim={self.v_head_dim}"
        )
