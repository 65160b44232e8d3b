"""The DeepSeek-V3 decoder: embed -> N x (latent attention, dense or MoE SwiGLU) -> RMSNorm."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.deepseek_v3.config import DeepseekV3Config
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.mla import MultiHeadLatentAttention
from lmhub.nn.moe import MoEFeedForward
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.transformer import PreNormDecoderLayer


class DeepseekV3Model(DecoderLM):
    """A DeepSeek-V3 causal language model (multi-head latent attention + mixture of experts).

    Example:
        >>> model = DeepseekV3Model(deepseek_v3_archs.get("deepseek_v3_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: DeepseekV3Config) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.rope = RotaryEmbedding(
            config.qk_rope_head_dim,
            theta=config.rope_theta,
            max_seq_len=config.max_seq_len,
            scaling=config.rope_scaling,
        )

        def norm(dim: int) -> RMSNorm:
            return RMSNorm(dim, eps=config.norm_eps)

        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                attn_norm=norm(config.model_dim),
                attn=MultiHeadLatentAttention(  # type: ignore[arg-type]
                    config.model_dim,
                    num_heads=config.num_heads,
                    q_lora_rank=config.q_lora_rank,
                    kv_lora_rank=config.kv_lora_rank,
                    qk_nope_dim=config.qk_nope_head_dim,
                    qk_rope_dim=config.qk_rope_head_dim,
                    v_head_dim=config.v_head_dim,
                    bias=config.attn_bias,
                    norm_eps=1e-6,  # the latent norms' eps is fixed, whatever rms_norm_eps
                    interleaved_rope=config.rope_interleave,
                    scale=config.softmax_scale(),
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                ),
                ffn_norm=norm(config.model_dim),
                ffn=self._ffn(i),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = norm(config.model_dim)
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.finish_init()

    def _ffn(self, layer_idx: int) -> nn.Module:
        """Layer ``layer_idx``'s feed-forward: dense for the first layers, MoE after them."""
        config = self.config
        if config.moe is not None and config.moe.layer_is_sparse(layer_idx):
            return MoEFeedForward(config.model_dim, config.moe)
        return GLUFeedForward(config.model_dim, config.ffn_inner_dim, activation="silu")

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: normal(0, init_std) for linears, embeddings, routers and experts
        (correction biases zero), ones for norms."""
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
            position_ids: ``[batch, seq]``; defaults to positions after what ``cache`` holds.
            cache: a KV cache to read from and append to; it stores each layer's latent and
                rotary key (see :mod:`lmhub.nn.mla`).
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets every position attend to every other (masked and diffusion
                LMs); padding keys stay masked. Incremental decoding needs the default.
        """
        b, s = input_ids.shape
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + s, device=input_ids.device).expand(b, s)
        x = self.embed(input_ids)
        rope = self.rope(position_ids, x.dtype)
        mask = None
        if attention_mask is not None:
            mask = build_attention_mask(
                q_len=s, kv_len=past + s, padding_mask=attention_mask, causal=causal
            )
        for layer in self.layers:
            x = layer(x, rope=rope, mask=mask, is_causal=causal and mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)
