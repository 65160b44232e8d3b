"""The Gemma decoder: the Llama model with Gemma's knobs (see ``GemmaConfig``)."""

from __future__ import annotations

from lmhub.models.gemma.config import GemmaConfig
from lmhub.models.llama.model import LlamaModel


class GemmaModel(LlamaModel):
    """A Gemma causal language model.

    Example:
        >>> model = GemmaModel(gemma_archs.get("gemma_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: GemmaConfig
