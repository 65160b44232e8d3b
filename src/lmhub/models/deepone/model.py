"""The DeepOne decoder, top to bottom: embed -> N x post-norm (ALiBi GQA, ReLU-GLU) -> logits.

Each layer computes ``h = norm(alpha * x + attn(x))`` and ``norm(alpha * h + ffn(h))`` with the
DeepNet constants alpha = (2N)^(1/4) and, at init, gain beta = (8N)^(-1/4) on the feed-forward,
value and output projections. Attention adds ``slope_h * (j - i)`` per head (ALiBi) under a
causal mask; there is no position table, so any sequence length runs.
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.deepone.config import DeepOneConfig
from lmhub.nn.alibi import AlibiAttention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.transformer import PostNormDecoderLayer


class DeepOneModel(DecoderLM):
    """A DeepOne causal language model.

    Example:
        >>> model = DeepOneModel(deepone_archs.get("deepone_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: DeepOneConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.layers = nn.ModuleList(
            PostNormDecoderLayer(
                attn=AlibiAttention(
                    config.model_dim,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_kv_heads,
                    head_dim=config.resolved_head_dim(),
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                    trainable_alibi=config.trainable_alibi,
                ),
                attn_norm=nn.LayerNorm(config.model_dim, eps=config.norm_eps),
                ffn=GLUFeedForward(config.model_dim, config.ffn_inner_dim, activation="relu"),
                ffn_norm=nn.LayerNorm(config.model_dim, eps=config.norm_eps),
                residual_scale=config.deepnet_alpha,
                dropout_p=config.dropout_p,
            )
            for i in range(config.num_layers)
        )
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.finish_init()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights the DeepNet way.

        Feed-forward, value and output projections: Xavier normal with gain beta = (8N)^(-1/4);
        query and key projections: Xavier normal with gain 1; embeddings (and an untied output):
        normal(0, init_std); layer norms: ones and zeros; ALiBi slopes: the geometric slopes.
        """
        beta = self.config.deepnet_beta
        nn.init.normal_(self.embed.weight, std=self.config.init_std)
        if not self.config.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, std=self.config.init_std)
        for layer in self.layers:
            attn, ffn = layer.attn, layer.ffn
            for proj in (attn.q_proj, attn.k_proj):
                nn.init.xavier_normal_(proj.weight, gain=1.0)
            for proj in (attn.v_proj, attn.o_proj, ffn.gate_proj, ffn.up_proj, ffn.down_proj):
                nn.init.xavier_normal_(proj.weight, gain=beta)
            attn.alibi.reset_parameters()
            layer.attn_norm.reset_parameters()
            layer.ffn_norm.reset_parameters()

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
            return_hidden: return the last layer's (normed) hidden states instead of logits.
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
        return x if return_hidden else self.logits(x)
