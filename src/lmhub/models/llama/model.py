"""The Llama decoder, top to bottom: embed -> N x (attention, SwiGLU) -> RMSNorm -> logits.

Mistral, Qwen2, Qwen3, Gemma 1/2/3, OLMo 2/3 and SmolLM3 are this model with other config knobs
(sliding windows per layer, projection biases, per-head or whole-projection q/k norms, Gemma's
(1 + w) norms, scaled embeddings, sandwich or post-only norms, softcaps, local RoPE bases, layers
without RoPE); their model classes subclass it to carry their name. Mixtral, Qwen3-MoE and
gpt-oss add mixture-of-experts feed-forwards (``config.moe``) and attention sinks.
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.moe import MoEFeedForward
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
        windows = config.layer_windows()
        self.layer_windows: tuple[int | None, ...] = tuple(windows)
        """Each layer's sliding window, ``None`` for full attention (masks are built from it)."""
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        # With partial RoPE the tables cover the rotated dimensions only (apply_rotary passes the
        # rest through).
        self.rope = RotaryEmbedding(
            config.rotary_dim(),
            theta=config.rope_theta,
            max_seq_len=config.max_seq_len,
            scaling=config.rope_scaling,
        )
        self.local_rope: RotaryEmbedding | None = None
        """The RoPE of the sliding layers when they have a base of their own (Gemma 3)."""
        if config.rope_local_theta is not None:
            self.local_rope = RotaryEmbedding(
                config.rotary_dim(), theta=config.rope_local_theta, max_seq_len=config.max_seq_len
            )

        def norm(dim: int) -> RMSNorm:
            return RMSNorm(dim, eps=config.norm_eps, unit_offset=config.norm_unit_offset)

        scale = config.attention_multiplier
        if scale is None and config.query_pre_attn_scalar is not None:
            scale = config.query_pre_attn_scalar**-0.5
        # A whole-projection q/k norm is as wide as the projection (OLMo 2/3).
        whole = config.qk_norm_scope == "projection"
        q_width = config.num_heads * head_dim if whole else head_dim
        k_width = config.num_kv_heads * head_dim if whole else head_dim
        self.layer_rotates: tuple[bool, ...] = tuple(config.layer_rotates())
        """Per layer, whether it applies RoPE (SmolLM3's NoPE layers do not)."""
        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                attn_norm=norm(config.model_dim) if config.pre_norms else None,
                attn=Attention(
                    config.model_dim,
                    num_heads=config.num_heads,
                    num_kv_heads=config.num_kv_heads,
                    head_dim=head_dim,
                    bias=config.attn_bias,
                    output_bias=config.attn_output_bias,
                    dropout_p=config.dropout_p,
                    attn_impl=config.attn_impl,
                    layer_idx=i,
                    q_norm=norm(q_width) if config.qk_norm else None,
                    k_norm=norm(k_width) if config.qk_norm else None,
                    sliding_window=windows[i],
                    scale=scale,
                    softcap=config.attn_logit_softcap,
                    qk_norm_scope=config.qk_norm_scope,
                    sinks=config.attn_sinks,
                ),
                ffn_norm=norm(config.model_dim) if config.pre_norms else None,
                ffn=self._ffn(i),
                attn_post_norm=norm(config.model_dim) if config.sandwich_norms else None,
                ffn_post_norm=norm(config.model_dim) if config.sandwich_norms else None,
                residual_multiplier=config.residual_multiplier,
            )
            for i in range(config.num_layers)
        )
        self.final_norm = norm(config.model_dim)
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.finish_init()

    def _ffn(self, layer_idx: int) -> nn.Module:
        """Layer ``layer_idx``'s feed-forward: mixture-of-experts where the config says so."""
        config = self.config
        if config.moe is not None and config.moe.layer_is_sparse(layer_idx):
            return MoEFeedForward(config.model_dim, config.moe)
        return GLUFeedForward(
            config.model_dim,
            config.ffn_inner_dim,
            activation=config.ffn_activation,
            bias=config.ffn_bias,
        )

    @property
    def kv_cache_windows(self) -> list[int | None] | None:
        """Each layer's sliding window (``None`` = full), for ring-buffer KV caches; ``None``
        when no layer slides."""
        windows = list(self.layer_windows)
        return windows if any(w is not None for w in windows) else None

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
            position_ids: ``[batch, seq]``; defaults to positions after what ``cache`` holds.
            cache: a KV cache to read from and append to (incremental decoding).
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets every position attend to every other (masked and diffusion LMs);
                padding keys stay masked. Incremental decoding with a cache needs the default.
        """
        b, s = input_ids.shape
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + s, device=input_ids.device).expand(b, s)
        x = self.embed(input_ids)
        if self.config.scale_embeddings:
            # transformers rounds the factor to the hidden dtype before multiplying.
            x = x * torch.tensor(self.config.model_dim**0.5, dtype=x.dtype)
        if self.config.embedding_multiplier != 1.0:
            x = x * self.config.embedding_multiplier
        rope = self.rope(position_ids, x.dtype)
        local_rope = rope if self.local_rope is None else self.local_rope(position_ids, x.dtype)
        # Layers of the same window share one mask (a cache keeps same-window layers alike).
        masks: dict[int | None, torch.Tensor | None] = {}
        layers = zip(self.layers, self.layer_windows, self.layer_rotates, strict=True)
        for i, (layer, window, rotates) in enumerate(layers):
            if window not in masks:
                masks[window] = self._mask(i, window, s, past, attention_mask, cache, causal)
            mask = masks[window]
            layer_rope = (rope if window is None else local_rope) if rotates else None
            x = layer(x, rope=layer_rope, mask=mask, is_causal=causal and mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)

    @staticmethod
    def _mask(
        layer_idx: int,
        window: int | None,
        q_len: int,
        past: int,
        attention_mask: torch.Tensor | None,
        cache: KVCache | None,
        causal: bool = True,
    ) -> torch.Tensor | None:
        """The mask of a layer with sliding ``window``; ``None`` means nothing to mask beyond
        ``causal`` (the kernel's own causal mask when it is set)."""
        full_ring = cache is not None and cache.window_is_full(layer_idx, q_len)
        if full_ring and attention_mask is None and causal:
            return None  # decoding over a full ring buffer: every key is in the window
        positions = cache.key_positions(layer_idx, q_len) if cache is not None else None
        if positions is None and window is not None and window >= past + q_len:
            window = None  # the window covers every position: a causal mask is the same
        if positions is None and window is None and attention_mask is None and q_len == 1:
            return None  # one new token sees every cached one: nothing to mask
        return build_attention_mask(
            q_len=q_len,
            kv_len=past + q_len,
            padding_mask=attention_mask,
            sliding_window=window,
            key_positions=positions,
            causal=causal,
        )
