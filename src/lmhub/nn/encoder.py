"""Blocks that bidirectional encoders share: the key-padding (and local-window) attention mask,
and the transform a masked-LM head applies before its vocabulary projection.

The layers themselves are :class:`~lmhub.nn.transformer.PostNormDecoderLayer` (BERT) and
:class:`~lmhub.nn.transformer.PreNormDecoderLayer` (ModernBERT) called with ``is_causal=False``
and the mask built here: nothing in them is causal by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.ffn import get_activation


def bidirectional_mask(
    *,
    seq_len: int,
    padding_mask: torch.Tensor | None = None,
    window: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor | None:
    """Return the boolean mask of a bidirectional encoder (True = may attend), broadcastable to
    ``[batch, heads, seq, seq]``, or ``None`` when nothing is masked. Padding alone gives
    ``[batch, 1, 1, seq]`` (one row of keys for every query); a window gives
    ``[batch or 1, 1, seq, seq]``.

    ``padding_mask`` is ``[batch, seq]`` with 1 (True) for real tokens: every query may see
    every real key. ``window`` restricts query ``i`` to keys ``j`` with ``|i - j| <= window``
    (ModernBERT's local layers, whose ``local_attention`` of 128 is a window of 64 each side).
    A query with nothing to see (padding far from any real token in a local layer) sees
    everything instead, so the softmax stays finite; its output is padding's and is ignored.

    Example:
        >>> bidirectional_mask(seq_len=3, padding_mask=torch.tensor([[1, 1, 0]]))
        tensor([[[[ True,  True, False]]]])
    """
    if padding_mask is not None and padding_mask.shape[-1] != seq_len:
        raise ValueError(
            f"The attention mask covers {padding_mask.shape[-1]} positions, but the input has "
            f"{seq_len}. Pass a [batch, seq] mask with 1 for real tokens and 0 for padding."
        )
    if padding_mask is None and (window is None or window >= seq_len - 1):
        return None
    if padding_mask is not None:
        device = padding_mask.device
    mask: torch.Tensor | None = None
    if window is not None and window < seq_len - 1:
        pos = torch.arange(seq_len, device=device)
        mask = ((pos[:, None] - pos[None, :]).abs() <= window)[None, None]
    if padding_mask is not None:
        keys = padding_mask.bool()[:, None, None, :]
        mask = keys if mask is None else mask & keys
    assert mask is not None
    return mask | ~mask.any(dim=-1, keepdim=True)


class MaskedLMHeadTransform(nn.Module):
    """``norm(act(dense(x)))``: what BERT's and ModernBERT's masked-LM heads do to the final
    hidden states before the (tied) vocabulary projection.

    Example:
        >>> head = MaskedLMHeadTransform(64, activation="gelu", eps=1e-12)
        >>> head(torch.randn(2, 3, 64)).shape
        torch.Size([2, 3, 64])
    """

    def __init__(
        self,
        model_dim: int,
        *,
        activation: str,
        eps: float,
        bias: bool = True,
        norm_bias: bool = True,
    ) -> None:
        super().__init__()
        self.dense = nn.Linear(model_dim, model_dim, bias=bias)
        self.norm = nn.LayerNorm(model_dim, eps=eps, bias=norm_bias)
        self.activation = activation
        self._act = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self._act(self.dense(x)))
