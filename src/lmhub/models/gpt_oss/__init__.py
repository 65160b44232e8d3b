"""The gpt-oss family (gpt-oss-20b, gpt-oss-120b)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.gpt_oss.config import GPT_OSS_FAMILY, GptOssConfig, gpt_oss_archs
from lmhub.models.gpt_oss.interop import (
    GPT_OSS_WEIGHT_MAP,
    gpt_oss_config_from_hf,
    gpt_oss_config_to_hf,
)
from lmhub.models.gpt_oss.model import GptOssModel
from lmhub.models.hub import ModelHub, get_model_hub

gpt_oss_family: Final[ModelFamily[GptOssModel, GptOssConfig]] = ModelFamily(
    name=GPT_OSS_FAMILY,
    model_class=GptOssModel,
    config_class=GptOssConfig,
    archs=gpt_oss_archs,
    builder=GptOssModel,
    weight_map=GPT_OSS_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("gpt_oss",),
        architectures=("GptOssForCausalLM",),
        config_from_hf=gpt_oss_config_from_hf,
        config_to_hf=gpt_oss_config_to_hf,
    ),
    kind="decoder",
    description="OpenAI's open-weight gpt-oss MoE decoders (attention sinks, alternating "
    "sliding/full layers, YaRN, clamped-SwiGLU experts; MXFP4 checkpoints dequantised).",
)


def get_gpt_oss_model_hub() -> ModelHub[GptOssModel, GptOssConfig]:
    """Return the typed hub of the gpt-oss family.

    Example:
        >>> hub = get_gpt_oss_model_hub()
        >>> model = hub.load_model("gpt_oss_20b")   # typed as GptOssModel
    """
    return get_model_hub(gpt_oss_family)


__all__ = [
    "GPT_OSS_FAMILY",
    "GptOssConfig",
    "GptOssModel",
    "get_gpt_oss_model_hub",
    "gpt_oss_archs",
    "gpt_oss_family",
]
