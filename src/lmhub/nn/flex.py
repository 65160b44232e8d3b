"""Attention through PyTorch's flex attention: masks as ``mask_mod``s, score changes as
``score_mod``s.

Flex attention (``torch.nn.attention.flex_attention``, PyTorch >= 2.5) takes the attention
pattern as two functions of the indices ``(batch, head, query, key)`` instead of a dense mask:
a ``mask_mod`` saying whether a query may see a key (causal, sliding window, padding), and a
``score_mod`` changing a scaled score before the softmax (softcapping, ALiBi). From the
``mask_mod`` it builds a block mask that skips blocks with nothing to attend to.

On CUDA the call is compiled into one fused kernel (the first call of each shape compiles).
Elsewhere it runs PyTorch's unfused reference, which materialises the scores like the eager
path: right, but no faster (measured on CPU: see the README's benchmark notes).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache
from typing import Any

import torch

from lmhub.errors import ConfigError

try:
    from torch.nn.attention.flex_attention import (
        and_masks,
        create_block_mask,
        flex_attention,
    )
except ImportError:  # PyTorch < 2.5
    FLEX_AVAILABLE = False
else:
    FLEX_AVAILABLE = True

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ScoreMod = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]


def causal_mod(q_len: int, kv_len: int, *, sliding_window: int | None = None) -> MaskMod:
    """The bottom-right-aligned causal mask (the queries are the last ``q_len`` of ``kv_len``
    positions), within ``sliding_window`` positions (the current one included) if given: the
    ``mask_mod`` form of :func:`lmhub.nn.masks.causal_mask`."""
    offset = kv_len - q_len

    def mask_mod(b: Any, h: Any, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        seen = kv_idx <= q_idx + offset
        if sliding_window is not None:
            seen = seen & (kv_idx > q_idx + offset - sliding_window)
        return seen

    return mask_mod


def tensor_mod(mask: torch.Tensor) -> MaskMod:
    """Look the answer up in a boolean mask ``[batch or 1, 1, q_len, kv_len]`` (True = may
    attend): the form a model's mask takes once padding, windows and ring-buffer slots are
    combined (:func:`lmhub.nn.masks.build_attention_mask`)."""
    if mask.shape[0] == 1:  # shared by the batch: index without the batch, which may be larger
        shared = mask[0, 0]

        def shared_mod(b: Any, h: Any, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            return shared[q_idx, kv_idx]

        return shared_mod
    per_row = mask[:, 0]

    def mask_mod(b: torch.Tensor, h: Any, q_idx: torch.Tensor, kv_idx: Any) -> torch.Tensor:
        return per_row[b, q_idx, kv_idx]

    return mask_mod


def softcap_mod(cap: float) -> ScoreMod:
    """``cap * tanh(score / cap)`` (Gemma 2), the ``score_mod`` form of :func:`lmhub.nn.softcap`."""

    def score_mod(score: torch.Tensor, b: Any, h: Any, q_idx: Any, kv_idx: Any) -> torch.Tensor:
        return torch.tanh(score / cap) * cap

    return score_mod


def bias_mod(bias: torch.Tensor) -> ScoreMod:
    """Add a score bias ``[batch or 1, heads, q_len, kv_len]`` (ALiBi)."""
    shared = bias[0] if bias.shape[0] == 1 else None

    def score_mod(
        score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: Any
    ) -> torch.Tensor:
        add = shared[h, q_idx, kv_idx] if shared is not None else bias[b, h, q_idx, kv_idx]
        return score + add.to(score.dtype)

    return score_mod


def chain_score_mods(*mods: ScoreMod | None) -> ScoreMod | None:
    """Apply the given ``score_mod``s in order (``None`` ones skipped); ``None`` if none."""
    chosen = [m for m in mods if m is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]

    def score_mod(score: torch.Tensor, b: Any, h: Any, q_idx: Any, kv_idx: Any) -> torch.Tensor:
        for mod in chosen:
            score = mod(score, b, h, q_idx, kv_idx)
        return score

    return score_mod


@cache
def _compiled_flex() -> Callable[..., torch.Tensor]:
    # Shapes change every decoding step: let the compiler mark them dynamic after the first.
    return torch.compile(flex_attention)  # type: ignore[no-any-return]


def flex_scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    is_causal: bool = False,
    sliding_window: int | None = None,
    scale: float | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Attend ``q`` ``[b, h, q, d]`` over ``k``/``v`` ``[b, h, kv, d]`` with flex attention.

    The same contract as :func:`lmhub.nn.attention.scaled_dot_product_attention`: ``mask`` is
    boolean (True = may attend), ``is_causal`` (without a mask) masks the future with the
    queries as the last positions, ``sliding_window`` (with ``is_causal``) limits each query to
    that many positions, ``softcap`` squashes the scaled scores, ``bias`` is added after it.
    """
    if q.device.type == "cpu" and torch.is_grad_enabled() and (q.requires_grad or k.requires_grad):
        raise ConfigError(
            f"Flex attention has no backward pass on CPU (PyTorch {torch.__version__}), and "
            "these queries/keys require gradients. Run the model under torch.no_grad() or "
            "torch.inference_mode(), or train on CPU with attn_impl 'sdpa' or 'eager'.",
            field="attn_impl",
            value="flex",
        )
    q_len, kv_len = q.shape[-2], k.shape[-2]
    mask_mods: list[MaskMod] = []
    if mask is not None:
        # A key-padding mask [b, 1, 1, kv] (encoders) broadcasts over the queries; flex looks
        # each (query, key) pair up, so give it the full view.
        mask = mask.expand(mask.shape[0], 1, q_len, kv_len)
        mask_mods.append(tensor_mod(mask))
    elif is_causal:
        mask_mods.append(causal_mod(q_len, kv_len, sliding_window=sliding_window))
    block_mask = None
    if mask_mods:
        batch = q.shape[0] if mask is not None and mask.shape[0] > 1 else None
        block_mask = create_block_mask(
            and_masks(*mask_mods), batch, None, q_len, kv_len, device=q.device
        )
    score_mod = chain_score_mods(
        softcap_mod(softcap) if softcap is not None else None,
        bias_mod(bias) if bias is not None else None,
    )
    if q.device.type == "cuda":
        run = _compiled_flex()
        return run(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)
    with warnings.catch_warnings():
        # Off CUDA the unfused reference is what lmhub means to run, not an oversight.
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        out = flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)
    assert isinstance(out, torch.Tensor)
    return out
