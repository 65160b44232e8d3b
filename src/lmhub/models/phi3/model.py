"""The Phi-3 decoder: the Llama model with Phi-3's knobs (see ``Phi3Config``); the fused
checkpoint projections are split by the weight map, not by the model."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.phi3.config import Phi3Config


class Phi3Model(LlamaModel):
    """A Phi-3 causal language model.

    Example:
        >>> model = Phi3Model(phi3_archs.get("phi3_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Phi3Config
