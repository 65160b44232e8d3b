"""Cross-attention: queries from the decoder, keys and values from the encoder output."""

from __future__ import annotations

import torch

from lmhub.nn.attention import Attention, scaled_dot_product_attention
from lmhub.nn.encdec_cache import EncoderDecoderCache


class CrossAttention(Attention):
    """:class:`~lmhub.nn.attention.Attention` whose keys and values project ``memory`` (the
    encoder output) rather than ``x``; the same projections and options (``bias``, ``scale``).

    With an :class:`~lmhub.nn.encdec_cache.EncoderDecoderCache` the keys and values are projected
    on the first call and read back afterwards.

    Example:
        >>> attn = CrossAttention(64, num_heads=4, num_kv_heads=4, head_dim=16)
        >>> attn(torch.randn(1, 2, 64), memory=torch.randn(1, 7, 64)).shape
        torch.Size([1, 2, 64])
    """

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` ``[b, q, d]`` over ``memory`` ``[b, src, d]``; ``mask`` is boolean
        ``[b, 1, 1 or q, src]`` (True = may attend), typically the source padding."""
        b, s, _ = x.shape
        d = self.head_dim
        q = self.q_proj(x).view(b, s, -1, d).transpose(1, 2)

        def project() -> tuple[torch.Tensor, torch.Tensor]:
            src = memory.shape[1]
            k = self.k_proj(memory).view(b, src, -1, d).transpose(1, 2)
            v = self.v_proj(memory).view(b, src, -1, d).transpose(1, 2)
            return k, v

        k, v = project() if cache is None else cache.cross_kv(self.layer_idx, project)
        out = scaled_dot_product_attention(
            q,
            k,
            v,
            mask=mask,
            scale=self.scale,
            dropout_p=self.dropout_p if self.training else 0.0,
            impl=self.attn_impl,
        )
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))
