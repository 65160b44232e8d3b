"""The plain causal LM, top to bottom: embed + sinusoids -> N x post-LN (attention, ReLU MLP).

Each layer computes ``h = LN(x + attn(x))`` and ``LN(h + mlp(h))`` (Vaswani et al., 2017), so
the last layer's output is already normed and goes straight to the output projection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.models.causal_lm.config import CausalLMConfig
from lmhub.models.decoder import DecoderLM
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import MLPFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask, positions_from_padding
from lmhub.nn.transformer import PostNormDecoderLayer


def sinusoidal_positions(
    position_ids: torch.Tensor, dim: int, *, theta: float = 10_000.0
) -> torch.Tensor:
    """Return the encodings ``[..., dim]`` of Vaswani et al. (float32) for integer positions.

    Channel ``2i`` holds ``sin(pos / theta^(2i/dim))`` and channel ``2i + 1`` the matching cosine.
    They are computed on the fly (cheap next to attention), so there is no table to outgrow.

    Example:
        >>> sinusoidal_positions(torch.tensor([0, 1]), 4)[1]
        tensor([0.8415, 0.5403, 0.0100, 0.9999])
    """
    device = position_ids.device
    inv_freq = theta ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    angles = position_ids.to(torch.float32)[..., None] * inv_freq
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class CausalLMModel(DecoderLM):
    """A plain decoder-only transformer language model.

    Example:
        >>> model = CausalLMModel(causal_lm_archs.get("causal_lm_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: CausalLMConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.model_dim
        self.embed_scale = math.sqrt(d) if config.scale_embeddings else 1.0
        self.embed = nn.Embedding(config.vocab_size, d)
        self.layers = nn.ModuleList(
            PostNormDecoderLayer(
                attn=Attention(
                    d,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_heads,
                    head_dim=d // config.num_heads,
                    bias=config.attn_bias,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                ),
                attn_norm=nn.LayerNorm(d, eps=config.norm_eps),
                ffn=MLPFeedForward(
                    d, config.ffn_inner_dim, activation="relu", bias=config.ffn_bias
                ),
                ffn_norm=nn.LayerNorm(d, eps=config.norm_eps),
                dropout_p=config.dropout_p,
            )
            for i in range(config.num_layers)
        )
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: normal(0, init_std) for linears and embeddings, zero biases, ones
        and zeros for layer norms."""
        self.normal_init_(self.config.init_std, reset=(nn.LayerNorm,))

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
        causal: bool = True,
    ) -> torch.Tensor:
        """Return logits ``[batch, seq, vocab]`` for token ids ``[batch, seq]``.

        Args:
            attention_mask: ``[batch, cached + seq]``, 1 for real tokens and 0 for padding.
            position_ids: ``[batch, seq]``; defaults to counting real tokens only (so a
                left-padded sequence gets the positions it would get alone), after what
                ``cache`` holds.
            cache: a KV cache to read from and append to (incremental decoding).
            return_hidden: return the last layer's (normed) hidden states instead of logits.
            causal: ``False`` lets every position attend to every other (masked and diffusion LMs);
                padding keys stay masked. Incremental decoding with a cache needs the default.
        """
        b, s = input_ids.shape
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            if attention_mask is not None:
                position_ids = positions_from_padding(attention_mask)[:, past:]
            else:
                position_ids = torch.arange(past, past + s, device=input_ids.device).expand(b, s)
        x = self.embed(input_ids) * self.embed_scale
        x = x + sinusoidal_positions(position_ids, x.shape[-1], theta=self.config.pos_theta).to(
            x.dtype
        )
        x = F.dropout(x, p=self.config.dropout_p, training=self.training)
        mask = build_attention_mask(
            q_len=s, kv_len=past + s, padding_mask=attention_mask, causal=causal
        )
        for layer in self.layers:
            x = layer(x, mask=mask, is_causal=causal and mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        return x if return_hidden else self.logits(x)
