"""The gpt-oss decoder: the Llama model with attention sinks, alternating sliding/full layers,
YaRN RoPE and biased mixture-of-experts feed-forwards (see ``GptOssConfig``)."""

from __future__ import annotations

from lmhub.models.gpt_oss.config import GptOssConfig
from lmhub.models.llama.model import LlamaModel


class GptOssModel(LlamaModel):
    """A gpt-oss causal language model.

    Example:
        >>> model = GptOssModel(gpt_oss_archs.get("gpt_oss_tiny"))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    config: GptOssConfig
