"""The GPT-NeoX decoder, top to bottom: embed -> N x (partial-RoPE attention and GELU MLP, in
parallel or in sequence) -> LayerNorm -> logits."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.gpt_neox.config import GPTNeoXConfig
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import MLPFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.positions import default_positions
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.transformer import ParallelDecoderLayer, PreNormDecoderLayer


class GPTNeoXModel(DecoderLM):
    """A GPT-NeoX (Pythia) causal language model.

    Example:
        >>> model = GPTNeoXModel(gpt_neox_archs.get("gpt_neox_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: GPTNeoXConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d, eps = config.model_dim, config.norm_eps
        self.embed = nn.Embedding(config.vocab_size, d)
        # The table covers the rotated dimensions only; apply_rotary passes the rest through.
        self.rope = RotaryEmbedding(
            config.rotary_dim(),
            theta=config.rope_theta,
            max_seq_len=config.max_seq_len,
            scaling=config.rope_scaling,
        )
        layer_class = ParallelDecoderLayer if config.use_parallel_residual else PreNormDecoderLayer
        self.layers = nn.ModuleList(
            layer_class(
                attn_norm=nn.LayerNorm(d, eps=eps),
                attn=Attention(
                    d,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_heads,
                    head_dim=config.resolved_head_dim(),
                    bias=config.attn_bias,
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
        """Initialise weights: normal(0, init_std) for linears and embeddings, zero biases,
        unit LayerNorms (transformers' GPT-NeoX init)."""
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
            attention_mask: ``[batch, cached + seq]``, 1 for real tokens and 0 for padding; or a
                boolean ``[batch, 1, seq, cached + seq]`` mask used as is (packed documents).
            position_ids: ``[batch, seq]``; defaults to
                :func:`~lmhub.nn.positions.default_positions`.
            cache: a KV cache to read from and append to (incremental decoding).
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets every position attend to every other (masked and diffusion LMs);
                padding keys stay masked. Incremental decoding with a cache needs the default.
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
