"""The Mixtral decoder: the Llama model with a mixture of experts in every layer."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.mixtral.config import MixtralConfig


class MixtralModel(LlamaModel):
    """A Mixtral causal language model.

    Example:
        >>> model = MixtralModel(mixtral_archs.get("mixtral_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: MixtralConfig
