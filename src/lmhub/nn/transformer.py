"""Transformer layers assembled from the shared blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.errors import ForwardInputError
from lmhub.nn.attention import Attention
from lmhub.nn.kv_cache import KVCache


class PreNormDecoderLayer(nn.Module):
    """``x + attn(norm(x))`` then ``h + ffn(norm(h))``: the Llama/Mistral/Qwen layer.

    With ``attn_post_norm`` / ``ffn_post_norm`` each sublayer output is normalised again before
    it joins the residual (the "sandwich" norms of Gemma 2 and 3). Without ``attn_norm`` /
    ``ffn_norm`` the sublayers read the residual stream as is (OLMo 2's post-norm-only layer:
    ``x + norm(attn(x))``).

    ``per_layer_input`` (Gemma 4's per-layer embeddings, a
    :class:`~lmhub.nn.per_layer_embeddings.PerLayerInputGate`) adds the layer's own embedding
    signal after the feed-forward, and ``layer_scale`` multiplies the layer's output by a stored
    scalar (a buffer, ``layer_scalar``, as in Gemma 4's checkpoints).
    """

    def __init__(
        self,
        *,
        attn_norm: nn.Module | None,
        attn: Attention,
        ffn_norm: nn.Module | None,
        ffn: nn.Module,
        attn_post_norm: nn.Module | None = None,
        ffn_post_norm: nn.Module | None = None,
        residual_multiplier: float = 1.0,
        per_layer_input: nn.Module | None = None,
        layer_scale: bool = False,
    ) -> None:
        super().__init__()
        self.residual_multiplier = residual_multiplier
        """A factor on each sublayer output before its residual add (Granite)."""
        self.attn_norm = attn_norm
        self.attn = attn
        self.ffn_norm = ffn_norm
        self.ffn = ffn
        # None is a plain attribute, so layers without them keep their state-dict keys.
        self.attn_post_norm = attn_post_norm
        self.ffn_post_norm = ffn_post_norm
        self.per_layer_input = per_layer_input
        self.layer_scalar: torch.Tensor | None
        if layer_scale:
            self.register_buffer("layer_scalar", torch.ones(1))
        else:
            self.layer_scalar = None

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        kv_store: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
        per_layer_input: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``kv_store`` goes to the attention (KV sharing, see
        :class:`~lmhub.nn.attention.Attention`); ``per_layer_input`` ``[batch, seq, dim]`` is
        this layer's slice of the per-layer embeddings, for ``per_layer_input``."""
        a_in = x if self.attn_norm is None else self.attn_norm(x)
        extra = {} if kv_store is None else {"kv_store": kv_store}
        a = self.attn(a_in, rope=rope, mask=mask, is_causal=is_causal, cache=cache, **extra)
        if self.attn_post_norm is not None:
            a = self.attn_post_norm(a)
        if self.residual_multiplier != 1.0:
            a = a * self.residual_multiplier
        h = x + a
        f = self.ffn(h if self.ffn_norm is None else self.ffn_norm(h))
        if self.ffn_post_norm is not None:
            f = self.ffn_post_norm(f)
        if self.residual_multiplier != 1.0:
            f = f * self.residual_multiplier
        out = h + f
        if self.per_layer_input is not None:
            if per_layer_input is None:
                raise ForwardInputError(
                    "The layer adds a per-layer input, but the forward got none: pass "
                    "per_layer_input, this layer's slice of the per-layer embeddings."
                )
            out = self.per_layer_input(out, per_layer_input)
        if self.layer_scalar is not None:
            out = out * self.layer_scalar
        return out

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Set the stored layer scalar, where the layer has one, to one."""
        if self.layer_scalar is not None:
            self.layer_scalar.fill_(1.0)


class PostNormDecoderLayer(nn.Module):
    """``norm(alpha * x + attn(x))`` then ``norm(alpha * h + ffn(h))``.

    With ``residual_scale`` (alpha) 1 this is the original transformer layer (Vaswani et al.,
    2017); DeepNet (Wang et al., 2022) up-weights the residual with alpha = (2N)^(1/4) to keep
    deep post-norm stacks stable. ``dropout_p`` drops out both sublayer outputs in training.
    """

    def __init__(
        self,
        *,
        attn: nn.Module,
        attn_norm: nn.Module,
        ffn: nn.Module,
        ffn_norm: nn.Module,
        residual_scale: float = 1.0,
        dropout_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.attn = attn
        self.attn_norm = attn_norm
        self.ffn = ffn
        self.ffn_norm = ffn_norm
        self.residual_scale = residual_scale
        self.dropout_p = dropout_p

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        alpha, p = self.residual_scale, self.dropout_p if self.training else 0.0
        a = self.attn(x, mask=mask, is_causal=is_causal, cache=cache)
        h = self.attn_norm(alpha * x + F.dropout(a, p=p, training=self.training))
        f = self.ffn(h)
        return self.ffn_norm(alpha * h + F.dropout(f, p=p, training=self.training))

    def extra_repr(self) -> str:
        return f"residual_scale={self.residual_scale:.4g}, dropout_p={self.dropout_p}"


class ParallelDecoderLayer(nn.Module):
    """``x + attn(attn_norm(x)) + ffn(ffn_norm(x))``: both sublayers read the same input
    (GPT-J, GPT-NeoX's ``use_parallel_residual``). Submodule names match
    :class:`PreNormDecoderLayer`, so one weight map serves both layer kinds."""

    def __init__(
        self, *, attn_norm: nn.Module, attn: Attention, ffn_norm: nn.Module, ffn: nn.Module
    ) -> None:
        super().__init__()
        self.attn_norm = attn_norm
        self.attn = attn
        self.ffn_norm = ffn_norm
        self.ffn = ffn

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        a = self.attn(self.attn_norm(x), rope=rope, mask=mask, is_causal=is_causal, cache=cache)
        # Summed in transformers' order (mlp + attn + x), so float rounding matches it.
        return self.ffn(self.ffn_norm(x)) + a + x
