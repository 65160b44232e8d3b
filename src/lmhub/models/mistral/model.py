"""The Mistral decoder: the Llama model with a sliding window (see ``MistralConfig``)."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.mistral.config import MistralConfig


class MistralModel(LlamaModel):
    """A Mistral causal language model.

    Example:
        >>> model = MistralModel(mistral_archs.get("mistral_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: MistralConfig
