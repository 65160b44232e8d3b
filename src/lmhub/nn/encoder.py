"""What bidirectional encoders add to the shared blocks: the transform a masked-LM head applies
before its vocabulary projection.

The layers themselves are :class:`~lmhub.nn.transformer.PostNormDecoderLayer` (BERT) and
:class:`~lmhub.nn.transformer.PreNormDecoderLayer` (ModernBERT) called with ``is_causal=False``
and a mask from :func:`lmhub.nn.masks.build_attention_mask` with ``causal=False`` (key padding,
symmetric windows): nothing in them is causal by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.ffn import get_activation


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
