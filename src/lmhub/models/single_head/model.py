"""The single-head decoder, top to bottom: embed -> N x pre-norm (merged-QK head, MLP) -> norm.

Each layer's one attention head scores query ``i`` against key ``j`` as
``x_i^T W_qk x_j / sqrt(d) + slope * (j - i)`` (one ``d x d`` matrix instead of ``W_q`` and
``W_k``; the keys are the normed inputs themselves) and returns ``softmax(scores) x W_v`` with no
output projection. The slope is one trainable scalar per layer (ALiBi); there is no position
table, so any sequence length runs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.single_head.config import SingleHeadConfig
from lmhub.nn.alibi import AlibiBias
from lmhub.nn.attention import scaled_dot_product_attention
from lmhub.nn.ffn import MLPFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.transformer import PreNormDecoderLayer


class MergedQKAttention(nn.Module):
    """One causal attention head with a merged query-key matrix and no output projection.

    The cache stores the (normed) inputs as keys and their value projections as values.
    """

    def __init__(
        self,
        model_dim: int,
        *,
        slope_init: float = 0.5,
        trainable_alibi: bool = True,
        dropout_p: float = 0.0,
        attn_impl: str = "sdpa",
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        self.qk_proj = nn.Linear(model_dim, model_dim, bias=False)
        self.v_proj = nn.Linear(model_dim, model_dim, bias=False)
        self.alibi = AlibiBias(1, trainable=trainable_alibi, init_slopes=[slope_init])
        self.scale = 1.0 / math.sqrt(model_dim)
        self.dropout_p = dropout_p
        self.attn_impl = attn_impl
        self.layer_idx = layer_idx

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        del rope  # positions come from ALiBi
        s = x.shape[1]
        past = cache.seq_len if cache is not None else 0
        # One head: [batch, 1, seq, dim]. Scores q·k = (x_i W_qk^T)·x_j.
        q = self.qk_proj(x)[:, None]
        k = x[:, None]
        v = self.v_proj(x)[:, None]
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)
        out = scaled_dot_product_attention(
            q,
            k,
            v,
            mask=mask,
            bias=self.alibi(s, past + s),
            is_causal=is_causal and mask is None,
            scale=self.scale,
            dropout_p=self.dropout_p if self.training else 0.0,
            impl=self.attn_impl,
        )
        return out[:, 0]


class SingleHeadModel(DecoderLM):
    """A causal language model with one merged query-key attention head per layer.

    Example:
        >>> model = SingleHeadModel(single_head_archs.get("single_head_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: SingleHeadConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.model_dim
        self.embed = nn.Embedding(config.vocab_size, d)
        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                attn_norm=nn.LayerNorm(d, eps=config.norm_eps),
                attn=MergedQKAttention(
                    d,
                    slope_init=config.alibi_slope_init,
                    trainable_alibi=config.trainable_alibi,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                ),
                ffn_norm=nn.LayerNorm(d, eps=config.norm_eps),
                ffn=MLPFeedForward(
                    d, config.ffn_inner_dim, activation=config.activation, bias=config.ffn_bias
                ),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(d, eps=config.norm_eps)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: normal(0, init_std), scaled by ``1/sqrt(2N)`` for the value and MLP
        output projections (they write into the residual stream); zero biases; ones/zeros for
        layer norms; ``alibi_slope_init`` for the slopes."""
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.num_layers)
        self.normal_init_(std, reset=(nn.LayerNorm, AlibiBias))
        for layer in self.layers:
            nn.init.normal_(layer.attn.v_proj.weight, std=residual_std)
            nn.init.normal_(layer.ffn.fc2.weight, std=residual_std)

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
            position_ids: ignored: ALiBi depends only on distances between tokens, which left
                padding does not change.
            cache: a KV cache to read from and append to (incremental decoding).
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets every position attend to every other (masked and diffusion LMs);
                padding keys stay masked. Incremental decoding with a cache needs the default.
        """
        del position_ids
        s = input_ids.shape[1]
        past = cache.seq_len if cache is not None else 0
        x = self.embed(input_ids)
        mask = build_attention_mask(
            q_len=s, kv_len=past + s, padding_mask=attention_mask, causal=causal
        )
        for layer in self.layers:
            x = layer(x, mask=mask, is_causal=causal and mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)
