"""The OLMo 3 decoder: OLMo 2 with sliding-window layers (see ``Olmo3Config``)."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.olmo3.config import Olmo3Config


class Olmo3Model(LlamaModel):
    """An OLMo 3 causal language model.

    Example:
        >>> model = Olmo3Model(olmo3_archs.get("olmo3_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Olmo3Config
