"""The Qwen3-MoE decoder: dense Qwen3 with mixture-of-experts feed-forwards."""

from __future__ import annotations

from lmhub.models.qwen3.model import Qwen3Model
from lmhub.models.qwen3_moe.config import Qwen3MoeConfig


class Qwen3MoeModel(Qwen3Model):
    """A Qwen3 mixture-of-experts causal language model.

    Example:
        >>> model = Qwen3MoeModel(qwen3_moe_archs.get("qwen3_moe_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: Qwen3MoeConfig  # type: ignore[assignment]
