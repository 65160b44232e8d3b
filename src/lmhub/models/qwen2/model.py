"""The Qwen2 / Qwen2.5 decoder: the Llama model with q/k/v biases (see ``Qwen2Config``)."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.qwen2.config import Qwen2Config


class Qwen2Model(LlamaModel):
    """A Qwen2 or Qwen2.5 causal language model.

    Example:
        >>> model = Qwen2Model(qwen2_archs.get("qwen2_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Qwen2Config
