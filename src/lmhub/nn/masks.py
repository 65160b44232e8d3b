"""Attention masks: causal, sliding-window and padding, as boolean tensors (True = may attend)."""

from __future__ import annotations

import torch


def causal_mask(
    q_len: int,
    kv_len: int,
    *,
    sliding_window: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return the bottom-right-aligned causal mask ``[q_len, kv_len]`` (True = may attend).

    The queries are the last ``q_len`` of ``kv_len >= q_len`` positions (a KV cache holds the
    rest), so query ``i`` may see key ``j`` when ``j <= i + (kv_len - q_len)``, and with a
    ``sliding_window`` of ``w`` also when ``j > i + (kv_len - q_len) - w``. For ``q_len ==
    kv_len`` it is the lower triangle, what ``F.scaled_dot_product_attention(is_causal=True)``
    applies; SDPA aligns its causal mask top-left, which is wrong for ``q_len < kv_len``.

    Example:
        >>> causal_mask(2, 4)
        tensor([[ True,  True,  True, False],
                [ True,  True,  True,  True]])
    """
    offset = kv_len - q_len
    mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(offset)
    if sliding_window is not None:
        mask = mask.triu(offset - sliding_window + 1)
    return mask


def build_attention_mask(
    *,
    q_len: int,
    kv_len: int,
    padding_mask: torch.Tensor | None = None,
    causal: bool = True,
    sliding_window: int | None = None,
    device: torch.device | str | None = None,
    key_positions: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Return a boolean mask ``[batch or 1, 1, q_len, kv_len]``, or ``None`` when nothing is masked.

    The queries are the last ``q_len`` of ``kv_len`` positions (a KV cache holds the rest), so
    query ``i`` sits at absolute position ``kv_len - q_len + i``. ``padding_mask`` is
    ``[batch, kv_len]`` with True (or 1) for real tokens, or a complete boolean mask
    ``[batch, 1, q_len, kv_len]`` (e.g. ``lmhub.data.packing.document_mask``), returned
    as is (intersected with the ``sliding_window`` if one is given). A purely causal mask over
    a fresh sequence (``q_len == kv_len``, no padding, no window) also returns ``None``: callers
    then pass ``is_causal=True`` to the attention kernel, which is faster than an explicit mask.

    Rows with nothing to attend to (padding queries of a left-padded batch) are opened up fully,
    so the softmax stays finite; their outputs are meaningless and ignored downstream.

    ``key_positions`` (from :meth:`KVCache.key_positions`, for a ring-buffer layer) gives the
    absolute position of each key, ``-1`` for an empty slot; ``kv_len`` then still counts every
    position so far (cached + new), which ``padding_mask`` covers, and the mask is
    ``[batch or 1, 1, q_len, len(key_positions)]``.

    Example:
        >>> build_attention_mask(q_len=1, kv_len=3, padding_mask=torch.tensor([[0, 1, 1]]))
        tensor([[[[False,  True,  True]]]])
    """
    if padding_mask is not None and padding_mask.shape[-1] != kv_len:
        raise ValueError(
            f"The attention mask covers {padding_mask.shape[-1]} positions, but the keys span "
            f"{kv_len} (cached + new). Pass a mask over the cached and the new tokens."
        )
    if padding_mask is not None and padding_mask.dim() == 4:
        # Already the whole mask (packed documents): use it as is, within the window if any.
        if sliding_window is None:
            return padding_mask.bool()
        window = build_attention_mask(
            q_len=q_len,
            kv_len=kv_len,
            causal=causal,
            sliding_window=sliding_window,
            device=padding_mask.device,
        )
        assert window is not None
        return padding_mask.bool() & window
    if key_positions is not None:
        return _mask_for_positions(
            q_len, kv_len, key_positions, padding_mask, causal, sliding_window, device
        )
    if padding_mask is None and sliding_window is None and (not causal or q_len == kv_len):
        return None
    if padding_mask is not None:
        device = padding_mask.device
    mask: torch.Tensor | None = None
    if causal:
        mask = causal_mask(q_len, kv_len, sliding_window=sliding_window, device=device)[None, None]
    elif sliding_window is not None:  # both ways: keys fewer than `window` positions away
        offset = kv_len - q_len
        band = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
        band = band.triu(offset - sliding_window + 1).tril(offset + sliding_window - 1)
        mask = band[None, None]
    if padding_mask is not None:
        keys = padding_mask.bool()[:, None, None, :]
        mask = keys if mask is None else mask & keys
    assert mask is not None
    return mask | ~mask.any(dim=-1, keepdim=True)


def _mask_for_positions(
    q_len: int,
    kv_len: int,
    key_positions: torch.Tensor,
    padding_mask: torch.Tensor | None,
    causal: bool,
    sliding_window: int | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    if padding_mask is not None:
        device = padding_mask.device
    k_pos = key_positions.to(device)[None, :]
    q_pos = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
    mask = (k_pos >= 0) & (k_pos <= q_pos) if causal else (k_pos >= 0).expand(q_len, -1)
    if sliding_window is not None:
        mask = mask & ((q_pos - k_pos).abs() < sliding_window)
    mask = mask[None, None]
    if padding_mask is not None:
        keys = padding_mask.bool()[:, k_pos[0].clamp(min=0)][:, None, None, :]
        mask = mask & keys
    return mask | ~mask.any(dim=-1, keepdim=True)


def positions_from_padding(padding_mask: torch.Tensor) -> torch.Tensor:
    """Return position ids that count only real tokens (left padding gets position 0 too).

    Example:
        >>> positions_from_padding(torch.tensor([[0, 0, 1, 1]]))
        tensor([[0, 0, 0, 1]])
    """
    return (padding_mask.long().cumsum(-1) - 1).clamp(min=0)
