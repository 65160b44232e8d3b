"""The Granite decoder: the Llama model with Granite's multipliers, and logits divided by
``logits_scaling``."""

from __future__ import annotations

import torch

from lmhub.models.granite.config import GraniteConfig
from lmhub.models.llama.model import LlamaModel


class GraniteModel(LlamaModel):
    """A Granite causal language model.

    Example:
        >>> model = GraniteModel(granite_archs.get("granite_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: GraniteConfig

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project final hidden states to logits, divided by ``logits_scaling``."""
        return super().logits(hidden) / self.config.logits_scaling
