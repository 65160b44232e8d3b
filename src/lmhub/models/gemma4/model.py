"""The Gemma 4 text decoder: scaled embed (+ per-layer embeddings) -> N x (sandwich-normed
attention over own or shared keys/values, GeGLU or GeGLU + experts, per-layer input, layer
scalar) -> RMSNorm -> soft-capped logits."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM
from lmhub.models.gemma4.config import Gemma4Config
from lmhub.models.llama.model import LlamaModel
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.moe import DenseMoEFeedForward, MoEFeedForward
from lmhub.nn.norm import RMSNorm
from lmhub.nn.per_layer_embeddings import PerLayerEmbeddings, PerLayerInputGate
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.softcap import softcap
from lmhub.nn.transformer import PreNormDecoderLayer


class Gemma4Model(DecoderLM):
    """A Gemma 4 (text) causal language model, dense or MoE.

    Example:
        >>> model = Gemma4Model(gemma4_archs.get("gemma4_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Gemma4Config

    def __init__(self, config: Gemma4Config) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.layer_windows: tuple[int | None, ...] = tuple(config.layer_windows())
        """Each layer's sliding window, ``None`` for the global layers."""
        self.kv_sources: tuple[int | None, ...] = tuple(config.kv_sources())
        """Per layer, the earlier layer whose keys and values it reuses (``None``: its own)."""
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.per_layer_embed = (
            PerLayerEmbeddings(
                config.per_layer_vocab_size,
                model_dim=config.model_dim,
                num_layers=config.num_layers,
                dim=config.per_layer_dim,
                eps=config.norm_eps,
            )
            if config.per_layer_dim
            else None
        )
        head_dim = config.resolved_head_dim()
        global_dim = config.global_head_dim or head_dim
        # Global layers: proportional RoPE over their whole (wider) heads; sliding: plain.
        self.rope = RotaryEmbedding(
            global_dim,
            theta=config.rope_theta,
            max_seq_len=config.max_seq_len,
            scaling=config.rope_scaling,
        )
        self.local_rope = RotaryEmbedding(
            head_dim,
            theta=config.rope_local_theta or config.rope_theta,
            max_seq_len=config.max_seq_len,
        )

        def norm(dim: int, affine: bool = True) -> RMSNorm:
            return RMSNorm(dim, eps=config.norm_eps, elementwise_affine=affine)

        types = config.resolved_layer_types()
        layers = []
        for i in range(config.num_layers):
            d = config.layer_head_dim(i)
            full = types[i] == "full"
            attn = Attention(
                config.model_dim,
                num_heads=config.num_heads,
                num_kv_heads=config.layer_kv_heads(i),
                head_dim=d,
                bias=config.attn_bias,
                dropout_p=config.dropout_p,
                attn_impl=config.attn_impl,
                layer_idx=i,
                q_norm=norm(d),
                k_norm=norm(d),
                v_norm=norm(d, affine=False),
                v_from_k=config.attn_k_eq_v and full,
                kv_from=self.kv_sources[i],
                sliding_window=self.layer_windows[i],
                scale=config.attention_multiplier,
            )
            moe = config.moe
            ffn = DenseMoEFeedForward(
                dense_norm=norm(config.model_dim),
                dense=self._ffn(i),
                dense_post_norm=norm(config.model_dim) if moe is not None else None,
                moe=(
                    MoEFeedForward(config.model_dim, moe, input_norm=norm(config.model_dim))
                    if moe is not None
                    else None
                ),
                moe_post_norm=norm(config.model_dim) if moe is not None else None,
            )
            per_layer = (
                PerLayerInputGate(
                    config.model_dim,
                    config.per_layer_dim,
                    activation=config.ffn_activation,
                    eps=config.norm_eps,
                )
                if config.per_layer_dim
                else None
            )
            layers.append(
                PreNormDecoderLayer(
                    attn_norm=norm(config.model_dim),
                    attn=attn,
                    ffn_norm=None,  # the feed-forward norms its own inputs
                    ffn=ffn,
                    attn_post_norm=norm(config.model_dim),
                    ffn_post_norm=norm(config.model_dim),
                    per_layer_input=per_layer,
                    layer_scale=True,
                )
            )
        self.layers = nn.ModuleList(layers)
        self.final_norm = norm(config.model_dim)
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.finish_init()

    def _ffn(self, layer_idx: int) -> GLUFeedForward:
        """Layer ``layer_idx``'s dense feed-forward (twice as wide on KV-sharing layers with
        ``double_wide_shared_ffn``)."""
        config = self.config
        wide = config.double_wide_shared_ffn and self.kv_sources[layer_idx] is not None
        return GLUFeedForward(
            config.model_dim,
            config.ffn_inner_dim * (2 if wide else 1),
            activation=config.ffn_activation,
            bias=config.ffn_bias,
        )

    @property
    def kv_cache_windows(self) -> list[int | None] | None:
        """Each layer's sliding window (``None`` = full), for ring-buffer KV caches."""
        windows = list(self.layer_windows)
        return windows if any(w is not None for w in windows) else None

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: normal(0, init_std) for linears, embeddings and experts, ones
        for norms, router scales and layer scalars."""
        self.normal_init_(self.config.init_std, reset=(RMSNorm, PreNormDecoderLayer))

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
            cache: a KV cache to read from and append to (the KV-sharing layers keep nothing
                in it: they read their source layer's keys and values).
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets every position attend to every other (sliding layers keep
                their window both ways); padding keys stay masked. Decoding needs the default.
        """
        b, s = input_ids.shape
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + s, device=input_ids.device).expand(b, s)
        x = self.embed(input_ids)
        # transformers rounds the factor to the weights' dtype before multiplying.
        x = x * torch.tensor(self.config.model_dim**0.5).to(x.dtype)
        per_layer = None
        if self.per_layer_embed is not None:
            per_layer = self.per_layer_embed(input_ids, x)
        rope = self.rope(position_ids, x.dtype)
        local_rope = self.local_rope(position_ids, x.dtype)
        kv_store: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = (
            {} if self.config.num_kv_shared_layers else None
        )
        masks: dict[int | None, torch.Tensor | None] = {}
        for i, (layer, window) in enumerate(zip(self.layers, self.layer_windows, strict=True)):
            if window not in masks:
                masks[window] = LlamaModel._mask(i, window, s, past, attention_mask, cache, causal)
            mask = masks[window]
            x = layer(
                x,
                rope=rope if window is None else local_rope,
                mask=mask,
                is_causal=causal and mask is None,
                cache=cache,
                kv_store=kv_store,
                per_layer_input=None if per_layer is None else per_layer[:, :, i],
            )
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project final hidden states to logits, soft-capped by ``final_logit_softcap``."""
        logits = super().logits(hidden)
        cap = self.config.final_logit_softcap
        return logits if cap is None else softcap(logits, cap)
