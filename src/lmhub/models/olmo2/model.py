"""The OLMo 2 decoder: the Llama model with post-sublayer norms and whole-projection q/k norms
(see ``Olmo2Config``)."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.olmo2.config import Olmo2Config


class Olmo2Model(LlamaModel):
    """An OLMo 2 causal language model.

    Example:
        >>> model = Olmo2Model(olmo2_archs.get("olmo2_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Olmo2Config
