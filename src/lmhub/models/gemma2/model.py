"""The Gemma 2 decoder: the Llama model with Gemma 2's knobs, and soft-capped logits."""

from __future__ import annotations

import torch

from lmhub.models.gemma2.config import Gemma2Config
from lmhub.models.llama.model import LlamaModel
from lmhub.nn.softcap import softcap


class Gemma2Model(LlamaModel):
    """A Gemma 2 causal language model.

    Example:
        >>> model = Gemma2Model(gemma2_archs.get("gemma2_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Gemma2Config

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project final hidden states to logits, soft-capped by ``final_logit_softcap``."""
        logits = super().logits(hidden)
        cap = self.config.final_logit_softcap
        return logits if cap is None else softcap(logits, cap)
