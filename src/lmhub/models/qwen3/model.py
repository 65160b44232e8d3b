"""The dense Qwen3 decoder: the Llama model with per-head q/k norms (see ``Qwen3Config``)."""

from __future__ import annotations

from lmhub.models.llama.model import LlamaModel
from lmhub.models.qwen3.config import Qwen3Config


class Qwen3Model(LlamaModel):
    """A dense Qwen3 causal language model.

    Example:
        >>> model = Qwen3Model(qwen3_archs.get("qwen3_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Qwen3Config
