"""The Llama decoder, top to bottom: embed -> N x (attention, SwiGLU) -> RMSNorm -> logits."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.transformer import PreNormDecoderLayer


class LlamaModel(DecoderLM):
    """A Llama causal language model.

    Example:
        >>> model = LlamaModel(llama_archs.get("llama_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        head_dim = config.resolved_head_dim()
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.rope = RotaryEmbedding(
            head_dim,
            theta=config.rope_theta,
            max_seq_len=config.max_seq_len,
            scaling=config.rope_scaling,
        )
        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                attn_norm=RMSNorm(config.model_dim, eps=config.norm_eps),
                attn=Attention(
                    config.model_dim,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_kv_heads,
                    head_dim=head_dim,
                    bias=config.attn_bias,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                ),
                ffn_norm=RMSNorm(config.model_dim, eps=config.norm_eps),
                ffn=GLUFeedForward(
                    config.model_dim, config.ffn_inner_dim, activation="silu", bias=config.ffn_bias
                ),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = RMSNorm(config.model_dim, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: normal(0, init_std) for linears and embeddings, ones for norms."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                module.reset_parameters()

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Return logits ``[batch, seq, vocab]`` for token ids ``[batch, seq]``.

        Args:
            attention_mask: ``[batch, cached + seq]``, 1 for real tokens and 0 for padding; or a
                boolean ``[batch, 1, seq, cached + seq]`` mask used as is (packed documents).
            position_ids: ``[batch, seq]``; defaults to positions after what ``cache`` holds.
            cache: a KV cache to read from and append to (incremental decoding).
            return_hidden: return the final normed hidden states instead of logits.
        """
        b, s = input_ids.shape
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + s, device=input_ids.device).expand(b, s)
        x = self.embed(input_ids)
        rope = self.rope(position_ids, x.dtype)
        if attention_mask is None and s == 1:
            mask, is_causal = None, False  # one new token sees every cached one: nothing to mask
        else:
            mask = build_attention_mask(q_len=s, kv_len=past + s, padding_mask=attention_mask)
            is_causal = mask is None
        for layer in self.layers:
            x = layer(x, rope=rope, mask=mask, is_causal=is_causal, cache=cache)
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)
