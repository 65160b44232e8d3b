"""The Gemma 3 text decoder: Gemma 2's model with q/k norms and a RoPE base per layer kind."""

from __future__ import annotations

from lmhub.models.gemma2.model import Gemma2Model
from lmhub.models.gemma3.config import Gemma3Config


class Gemma3Model(Gemma2Model):
    """A Gemma 3 (text) causal language model.

    Example:
        >>> model = Gemma3Model(gemma3_archs.get("gemma3_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Gemma3Config
