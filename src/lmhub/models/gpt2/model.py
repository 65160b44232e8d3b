"""The GPT-2 decoder, top to bottom: embed + learned positions -> N x pre-LN (attention, GELU
MLP) -> LayerNorm -> logits (tied to the embedding)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.gpt2.config import GPT2Config
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import MLPFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.positions import LearnedPositionEmbedding, default_positions
from lmhub.nn.transformer import PreNormDecoderLayer


class GPT2Model(DecoderLM):
    """A GPT-2 causal language model.

    Example:
        >>> model = GPT2Model(gpt2_archs.get("gpt2_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d, eps = config.model_dim, config.norm_eps
        self.embed = nn.Embedding(config.vocab_size, d)
        self.pos_embed = LearnedPositionEmbedding(config.max_seq_len, d)
        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                attn_norm=nn.LayerNorm(d, eps=eps),
                attn=Attention(
                    d,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_heads,
                    head_dim=d // config.num_heads,
                    bias=True,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                ),
                ffn_norm=nn.LayerNorm(d, eps=eps),
                ffn=MLPFeedForward(d, config.ffn_inner_dim, activation=config.activation),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(d, eps=eps)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2's init: normal(0, init_std) weights, zero biases, unit LayerNorms, and
        ``init_std / sqrt(2 * num_layers)`` for the projections that write the residual."""
        std = self.config.init_std
        self.normal_init_(std, reset=(nn.LayerNorm,))
        for layer in self.layers:
            for proj in (layer.attn.o_proj, layer.ffn.fc2):
                nn.init.normal_(proj.weight, std=std / math.sqrt(2 * self.config.num_layers))

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
            attention_mask: ``[batch, cached + seq]``, 1 for real tokens and 0 for padding; or a
                boolean ``[batch, 1, seq, cached + seq]`` mask used as is (packed documents).
            position_ids: ``[batch, seq]``; defaults to :func:`default_positions`.
            cache: a KV cache to read from and append to (incremental decoding).
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets every position attend to every other (masked and diffusion LMs);
                padding keys stay masked. Incremental decoding with a cache needs the default.
        """
        s = input_ids.shape[1]
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = default_positions(input_ids, attention_mask, past)
        x = self.embed(input_ids) + self.pos_embed(position_ids)
        mask = build_attention_mask(
            q_len=s, kv_len=past + s, padding_mask=attention_mask, causal=causal
        )
        for layer in self.layers:
            x = layer(x, mask=mask, is_causal=causal and mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)
