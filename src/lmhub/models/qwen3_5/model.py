"""The Qwen3.5 text decoder: embed -> N x (Gated DeltaNet or gated attention, dense or MoE
SwiGLU) -> RMSNorm -> logits."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.errors import UnsupportedMaskError
from lmhub.models.decoder import DecoderLM
from lmhub.models.qwen3_5.attention import GatedAttention
from lmhub.models.qwen3_5.config import Qwen3_5Config
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.gated_deltanet import GatedDeltaNet, GatedRMSNorm
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import build_attention_mask
from lmhub.nn.moe import MoEFeedForward
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import RotaryEmbedding
from lmhub.nn.transformer import PreNormDecoderLayer


class Qwen3_5Model(DecoderLM):
    """A Qwen3.5 causal language model (text): hybrid linear/full attention, dense or MoE.

    Example:
        >>> model = Qwen3_5Model(qwen3_5_archs.get("qwen3_5_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(self, config: Qwen3_5Config) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.mixer_types = tuple(config.resolved_mixer_types())
        """Each layer's token mixer, ``"linear"`` or ``"full"``."""
        head_dim = config.resolved_head_dim()
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.rope = RotaryEmbedding(
            config.rotary_dim(),
            theta=config.rope_theta,
            max_seq_len=config.max_seq_len,
            scaling=config.rope_scaling,
        )

        def norm(dim: int) -> RMSNorm:
            return RMSNorm(dim, eps=config.norm_eps, unit_offset=True)

        def mixer(i: int) -> nn.Module:
            if self.mixer_types[i] == "linear":
                return GatedDeltaNet(
                    config.model_dim,
                    num_k_heads=config.linear_num_key_heads,
                    num_v_heads=config.linear_num_value_heads,
                    k_head_dim=config.linear_key_head_dim,
                    v_head_dim=config.linear_value_head_dim,
                    conv_kernel=config.linear_conv_kernel,
                    norm_eps=config.norm_eps,
                    layer_idx=i,
                )
            return GatedAttention(
                config.model_dim,
                num_heads=config.num_heads,
                num_kv_heads=config.num_kv_heads,
                head_dim=head_dim,
                bias=config.attn_bias,
                dropout_p=config.dropout_p,
                attn_impl=config.attn_impl,
                layer_idx=i,
                q_norm=norm(head_dim),
                k_norm=norm(head_dim),
            )

        self.layers = nn.ModuleList(
            PreNormDecoderLayer(
                attn_norm=norm(config.model_dim),
                attn=mixer(i),  # type: ignore[arg-type]
                ffn_norm=norm(config.model_dim),
                ffn=self._ffn(i),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = norm(config.model_dim)
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.finish_init()

    def _ffn(self, layer_idx: int) -> nn.Module:
        config = self.config
        if config.moe is not None and config.moe.layer_is_sparse(layer_idx):
            return MoEFeedForward(config.model_dim, config.moe)
        return GLUFeedForward(config.model_dim, config.ffn_inner_dim, activation="silu")

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise weights: normal(0, init_std) for linears, embeddings and experts, zeros
        for the (1 + w) norms, ones for the gated output norms, transformers' decay init."""
        self.normal_init_(self.config.init_std, reset=(RMSNorm, GatedRMSNorm))

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
            attention_mask: ``[batch, cached + seq]``, 1 for real tokens and 0 for padding
                (padded tokens are also kept out of the linear-attention state). A 4D
                document mask is refused while the model has linear-attention layers.
            position_ids: ``[batch, seq]``; defaults to positions after what ``cache`` holds.
            cache: a KV cache: the full-attention layers keep keys and values in it, the
                linear-attention layers their convolution window and state matrices.
            return_hidden: return the final normed hidden states instead of logits.
            causal: ``False`` lets the full-attention layers attend both ways (masked and
                diffusion LMs; padding keys stay masked); the linear-attention layers stay
                causal, their state being a left-to-right recurrence. Decoding needs the default.
        """
        b, s = input_ids.shape
        past = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + s, device=input_ids.device).expand(b, s)
        x = self.embed(input_ids)
        rope = self.rope(position_ids, x.dtype)
        mask = None
        padding = None
        if attention_mask is not None:
            mask = build_attention_mask(
                q_len=s, kv_len=past + s, padding_mask=attention_mask, causal=causal
            )
            if attention_mask.dim() == 2:  # (transformers skips it for one token: no-op there)
                padding = attention_mask[:, -s:]
            elif "linear" in self.mixer_types:
                raise UnsupportedMaskError(
                    f"Qwen3.5's linear-attention layers carry one state along the whole row, so "
                    f"they cannot keep the documents of a packed row apart, but the model got a "
                    f"{tuple(attention_mask.shape)} attention mask. Pass a [batch, seq] padding "
                    "mask: put one document in each row (no packing).",
                    family="qwen3_5",
                    shape=tuple(attention_mask.shape),
                )
        for layer, kind in zip(self.layers, self.mixer_types, strict=True):
            if kind == "linear":
                x = layer(x, mask=padding, cache=cache)
            else:
                x = layer(x, rope=rope, mask=mask, is_causal=causal and mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        x = self.final_norm(x)
        return x if return_hidden else self.logits(x)
