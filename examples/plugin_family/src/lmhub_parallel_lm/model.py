"""The parallel-LM decoder: embed -> N x parallel (attention + SwiGLU) layers -> RMSNorm -> logits.

Everything is one of lmhub's shared blocks (:mod:`lmhub.nn`); the family only wires them up, so
KV caches, padding masks, the attention kernels and the decode-time fused weights of
``lmhub.generate`` all work without code of its own.
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.norm import RMSNorm
from lmhub.nn.positions import default_positions
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.transformer import ParallelDecoderLayer
from lmhub_parallel_lm.config import ParallelLMConfig


class ParallelLMModel(DecoderLM):
    """A causal language model of parallel-residual layers.

    Example:
        >>> model = ParallelLMModel(parallel_lm_archs.get("parallel_lm_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: ParallelLMConfig

    def __init__(self, config: ParallelLMConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d, eps = config.model_dim, config.norm_eps
        self.embed = nn.Embedding(config.vocab_size, d)
        self.rope = RotaryEmbedding(
            config.head_width, theta=config.rope_theta, max_seq_len=config.max_seq_len
        )
        self.layers = nn.ModuleList(
            ParallelDecoderLayer(
                attn_norm=RMSNorm(d, eps=eps),
                attn=Attention(
                    d,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_kv_heads,
                    head_dim=config.head_width,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                ),
                ffn_norm=RMSNorm(d, eps=eps),
                ffn=GLUFeedForward(d, config.ffn_inner_dim, activation="silu"),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = RMSNorm(d, eps=eps)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: normal(0, init_std) for linears and embeddings, ones for norms."""
        self.normal_init_(self.config.init_std, reset=(RMSNorm,))

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
            position_ids: ``[batch, seq]``; by default positions after what ``cache`` holds,
                counting real tokens only.
            cache: a KV cache to read from and append to (incremental decoding).
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets every position attend to every other; padding keys stay
                masked. Incremental decoding with a cache needs the default.
        """
        s = input_ids.shape[1]
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = default_positions(input_ids, attention_mask, past)
        x = self.embed(input_ids)
        rope = self.rope(position_ids, x.dtype)
        mask = build_attention_mask(
            q_len=s, kv_len=past + s, padding_mask=attention_mask, causal=causal
        )
        for layer in self.layers:
            x = layer(x, rope=rope, mask=mask, is_causal=causal and mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)
