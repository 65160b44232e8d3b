"""Multi-head attention with grouped/multi-query key-value heads and selectable kernels.

Projections are kept separate (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``), as in Hugging Face
checkpoints, so loading one is a rename with no copies.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.errors import ConfigError, ForwardInputError
from lmhub.nn.flex import FLEX_AVAILABLE, flex_scaled_dot_product_attention
from lmhub.nn.kv_cache import KVCache
from lmhub.nn.masks import causal_mask
from lmhub.nn.rope import apply_rotary, rotate_half
from lmhub.nn.softcap import softcap as softcap_

AttnImpl = Literal["eager", "sdpa", "flex"]
ATTN_IMPLS: tuple[str, ...] = ("eager", "sdpa", "flex") if FLEX_AVAILABLE else ("eager", "sdpa")
"""The attention implementations this PyTorch runs ("flex" needs PyTorch >= 2.5)."""


def check_attn_impl(value: object, *, field: str = "attn_impl") -> None:
    """Raise :class:`ConfigError` unless ``value`` names an implementation this PyTorch runs.

    Example:
        >>> check_attn_impl("flash")
        Traceback (most recent call last):
        ...
        lmhub.errors.ConfigError: 'attn_impl' is 'flash', which is not an attention ...
    """
    if value in ATTN_IMPLS:
        return
    if value == "flex":
        raise ConfigError(
            f"'{field}' is 'flex', but this PyTorch ({torch.__version__}) has no "
            "torch.nn.attention.flex_attention (it came in PyTorch 2.5). Upgrade PyTorch or "
            f"pick one of {', '.join(ATTN_IMPLS)}.",
            field=field,
            value=value,
        )
    raise ConfigError(
        f"'{field}' is '{value}', which is not an attention implementation lmhub runs here. "
        f"Pick one of {', '.join(ATTN_IMPLS)}.",
        field=field,
        value=value,
    )


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Expand ``[batch, kv_heads, seq, dim]`` to ``[batch, kv_heads * n_rep, seq, dim]``."""
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    softcap: float | None = None,
    dropout_p: float = 0.0,
    impl: str = "sdpa",
    sinks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attend ``q`` ``[b, h, q, d]`` over ``k``/``v`` ``[b, h, kv, d]`` (heads already matched).

    ``mask`` is boolean (True = may attend), ``bias`` is added to the scores (ALiBi);
    ``is_causal`` applies a causal mask when ``mask`` is None. ``impl`` is ``"sdpa"`` (PyTorch's
    fused kernel), ``"flex"`` (flex attention, the masks and the softcap as its mask/score
    functions: :mod:`lmhub.nn.flex`) or ``"eager"`` (explicit softmax in float32; the
    reference). ``softcap`` squashes the scaled scores into ``(-softcap, softcap)`` with
    ``softcap * tanh(s / softcap)`` (Gemma 2); PyTorch's SDPA kernels cannot do that, so a
    softcapped ``"sdpa"`` call runs the eager path. ``sinks`` ``[heads]`` are learned per-head
    logits that join each softmax as one more column without a value (gpt-oss); neither SDPA
    nor flex attention can add that column, so a call with sinks always runs eagerly.
    """
    if impl == "flex" and sinks is None:
        check_attn_impl(impl)
        if dropout_p > 0.0:
            raise ConfigError(
                f"Flex attention has no attention dropout, but the dropout is {dropout_p}. Set "
                "the config's dropout to 0 for training with attn_impl 'flex', or train with "
                "'sdpa' or 'eager'.",
                field="attn_impl",
                value=impl,
            )
        return flex_scaled_dot_product_attention(
            q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale, softcap=softcap
        )
    if is_causal and mask is None and q.shape[-2] != k.shape[-2]:
        # The queries are the last q_len positions (a cache holds the rest): a single query sees
        # every key, several need a bottom-right causal mask (SDPA's is_causal is top-left).
        q_len, kv_len = q.shape[-2], k.shape[-2]
        is_causal = False
        if q_len > 1:
            mask = causal_mask(q_len, kv_len, device=q.device)
    if impl == "sdpa" and softcap is None and sinks is None:
        attn_mask: torch.Tensor | None = mask
        if bias is not None:
            attn_mask = bias.to(q.dtype)
            if mask is not None:
                attn_mask = attn_mask.masked_fill(~mask, float("-inf"))
            elif is_causal:
                causal = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
                attn_mask = attn_mask.masked_fill(~causal, float("-inf"))
            is_causal = False
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
    check_attn_impl(impl)
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if softcap is not None:
        scores = softcap_(scores, softcap)
    if bias is not None:
        scores = scores + bias
    if mask is None and is_causal:
        mask = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    if sinks is not None:
        sink = sinks.to(scores.dtype).view(1, -1, 1, 1).expand(*scores.shape[:-1], 1)
        probs = torch.softmax(torch.cat([scores, sink], -1), dim=-1, dtype=torch.float32)
        probs = probs[..., :-1].to(q.dtype)
    else:
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return torch.matmul(probs, v)


class Attention(nn.Module):
    """Grouped-query self-attention (``num_kv_heads`` divides ``num_heads``; 1 = multi-query).

    ``bias`` gives the q/k/v projections biases and ``output_bias`` the output one (``None``:
    as ``bias``); Qwen2 has the first without the second. ``q_norm``/``k_norm`` normalise each
    query/key head over its width before RoPE (Qwen3). ``scale`` replaces the usual
    ``head_dim ** -0.5`` score scale (Gemma 2's ``query_pre_attn_scalar ** -0.5``), and
    ``softcap`` caps the scores with a tanh (see :func:`scaled_dot_product_attention`).
    With ``qk_norm_scope="projection"`` the norms span the whole query/key projection
    (``heads * head_dim`` wide) instead of one head (OLMo 2/3).
    ``sinks`` gives each head a learned sink logit (gpt-oss).
    ``v_norm`` normalises each value head (Gemma 4). With ``v_from_k`` the layer has no value
    projection: the values are the key projection's output before the key norm and RoPE
    (Gemma 4's ``attention_k_eq_v``). With ``kv_from`` set the layer projects only queries and
    attends over the keys and values of layer ``kv_from`` (Gemma 4's KV sharing): it has no
    k/v projections, writes nothing to the cache, and reads them from the ``kv_store`` that
    layer filled earlier in the same forward.
    ``sliding_window`` is informational: the
    layer's window (``None`` for full attention), which the model reads to give the layer its
    mask and the KV cache its ring size; the mask itself comes in through ``forward``.

    Example:
        >>> attn = Attention(64, num_heads=4, num_kv_heads=2, head_dim=16)
        >>> attn(torch.randn(1, 5, 64), is_causal=True).shape
        torch.Size([1, 5, 64])
    """

    def __init__(
        self,
        model_dim: int,
        *,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        bias: bool = False,
        output_bias: bool | None = None,
        dropout_p: float = 0.0,
        attn_impl: str = "sdpa",
        layer_idx: int = 0,
        q_norm: nn.Module | None = None,
        k_norm: nn.Module | None = None,
        sliding_window: int | None = None,
        scale: float | None = None,
        softcap: float | None = None,
        qk_norm_scope: str = "head",
        sinks: bool = False,
        v_norm: nn.Module | None = None,
        v_from_k: bool = False,
        kv_from: int | None = None,
    ) -> None:
        super().__init__()
        if num_heads % num_kv_heads != 0:
            raise ValueError(
                f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})."
            )
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.dropout_p = dropout_p
        self.attn_impl = attn_impl
        self.layer_idx = layer_idx
        self.sliding_window = sliding_window
        self.scale = scale
        self.softcap = softcap
        self.qk_norm_scope = qk_norm_scope
        self.kv_from = kv_from
        """The earlier layer whose keys and values this one attends over (KV sharing), or
        ``None`` for its own."""
        self.q_proj = nn.Linear(model_dim, num_heads * head_dim, bias=bias)
        # None is a plain attribute: layers without them have no such state-dict keys.
        self.k_proj = (
            nn.Linear(model_dim, num_kv_heads * head_dim, bias=bias) if kv_from is None else None
        )
        self.v_proj = (
            nn.Linear(model_dim, num_kv_heads * head_dim, bias=bias)
            if kv_from is None and not v_from_k
            else None
        )
        self.o_proj = nn.Linear(
            num_heads * head_dim, model_dim, bias=bias if output_bias is None else output_bias
        )
        # None is a plain attribute, so models without them keep their state-dict keys.
        self.q_norm = q_norm
        self.k_norm = k_norm if kv_from is None else None
        self.v_norm = v_norm if kv_from is None else None
        self.sinks = nn.Parameter(torch.empty(num_heads)) if sinks else None
        """Per-head learned sink logits (gpt-oss), or ``None``."""

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        bias: torch.Tensor | None = None,
        kv_store: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Attend over ``x`` (and what ``cache`` holds); ``bias`` is added to the scores (ALiBi).

        ``kv_store`` (KV sharing): a layer with its own projections records the keys and values
        it attends over (cached ones included) there under its index; a ``kv_from`` layer reads
        its source layer's, and attends over them with the mask it is given.
        """
        b, s, _ = x.shape
        if self.kv_from is not None:
            if kv_store is None or self.kv_from not in kv_store:
                raise ForwardInputError(
                    f"Attention layer {self.layer_idx} reuses the keys and values of layer "
                    f"{self.kv_from}, but the forward got no kv_store holding them. Run the "
                    "layers in order with one kv_store dict per forward."
                )
            q = self.project_q(x, rope)
            k, v = kv_store[self.kv_from]
        else:
            q, k, v = self.project_qkv(x, rope)
            if cache is not None:
                k, v = cache.update(self.layer_idx, k, v)
            if kv_store is not None:
                kv_store[self.layer_idx] = (k, v)
        # Heads from the shapes: under tensor parallelism each rank holds only some of them.
        n_rep = q.shape[1] // k.shape[1]
        out = scaled_dot_product_attention(
            q,
            repeat_kv(k, n_rep),
            repeat_kv(v, n_rep),
            mask=mask,
            bias=bias,
            is_causal=is_causal and mask is None,
            scale=self.scale,
            softcap=self.softcap,
            dropout_p=self.dropout_p if self.training else 0.0,
            impl=self.attn_impl,
            sinks=self.sinks,
        )
        out = out.transpose(1, 2).reshape(b, s, -1)
        return self.o_proj(out)

    def project_qkv(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return q ``[b, heads, s, d]`` and k, v ``[b, kv_heads, s, d]``, normed and rotated.

        (:class:`lmhub.nn.decode_weights.FusedQKVAttention` does it in one product.)
        """
        b, s, _ = x.shape
        d = self.head_dim  # head counts from the shapes: under TP each rank holds a share
        if self.k_proj is None:
            raise ForwardInputError(
                f"Attention layer {self.layer_idx} reuses layer {self.kv_from}'s keys and "
                "values and has no k/v projections. Call project_q for its queries."
            )
        q = self.q_proj(x).view(b, s, -1, d).transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, d).transpose(1, 2)
        v = k if self.v_proj is None else self.v_proj(x).view(b, s, -1, d).transpose(1, 2)
        if self.v_norm is not None:
            v = self.v_norm(v)
        q, k = self.norm_qk(q, k)
        if rope is not None:
            q, k = apply_rotary(q, k, *rope)
        return q, k, v

    def project_q(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Return the queries ``[b, heads, s, d]``, normed and rotated (the whole projection of
        a layer that reuses another's keys and values)."""
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q = self._norm(self.q_norm, q)
        if rope is not None:
            cos, sin = rope[0].unsqueeze(1), rope[1].unsqueeze(1)
            rot = cos.shape[-1]
            q_rot = q[..., :rot]
            q_rot = q_rot * cos + rotate_half(q_rot) * sin
            q = q_rot if rot == q.shape[-1] else torch.cat((q_rot, q[..., rot:]), dim=-1)
        return q

    def norm_qk(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the q/k norms where the layer has them, before RoPE: per head (Qwen3, Gemma 3)
        or over the whole projection (OLMo 2/3). ``q``/``k`` are ``[b, heads, s, d]``."""
        if self.q_norm is not None:
            q = self._norm(self.q_norm, q)
        if self.k_norm is not None:
            k = self._norm(self.k_norm, k)
        return q, k

    def _norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.qk_norm_scope == "head":
            return norm(x)
        b, h, s, d = x.shape
        whole = norm(x.transpose(1, 2).reshape(b, s, h * d))
        return whole.view(b, s, h, d).transpose(1, 2)

    @torch.no_grad()
    def init_params_(self, std: float) -> None:
        """Draw the sink logits, where the layer has them, from normal(0, ``std``)."""
        if self.sinks is not None:
            nn.init.normal_(self.sinks, mean=0.0, std=std)

    def extra_repr(self) -> str:
        window = f", sliding_window={self.sliding_window}" if self.sliding_window else ""
        if self.kv_from is not None:
            window += f", kv_from={self.kv_from}"
        softcap = f", softcap={self.softcap}" if self.softcap is not None else ""
        return f"layer_idx={self.layer_idx}{window}{softcap}"
