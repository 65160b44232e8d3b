"""The SmolLM3 decoder: the Llama model with NoPE layers (see ``SmolLM3Config``)."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.smollm3.config import SmolLM3Config


class SmolLM3Model(LlamaModel):
    """A SmolLM3 causal language model.

    Example:
        >>> model = SmolLM3Model(smollm3_archs.get("smollm3_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: SmolLM3Config
