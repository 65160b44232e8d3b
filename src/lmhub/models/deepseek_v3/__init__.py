"""The DeepSeek-V3 family: multi-head latent attention and sigmoid-routed experts."""

from typing import Final

from lmhub.models.deepseek_v3.config import (
    DEEPSEEK_V3_FAMILY,
    DeepseekV3Config,
    deepseek_v3_archs,
)
from lmhub.models.deepseek_v3.interop import (
    DEEPSEEK_V3_WEIGHT_MAP,
    deepseek_v3_config_from_hf,
    deepseek_v3_config_to_hf,
)
from lmhub.models.deepseek_v3.model import DeepseekV3Model
from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub

deepseek_v3_family: Final[ModelFamily[DeepseekV3Model, DeepseekV3Config]] = ModelFamily(
    name=DEEPSEEK_V3_FAMILY,
    model_class=DeepseekV3Model,
    config_class=DeepseekV3Config,
    archs=deepseek_v3_archs,
    builder=DeepseekV3Model,
    weight_map=DEEPSEEK_V3_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("deepseek_v3",),
        architectures=("DeepseekV3ForCausalLM",),
        config_from_hf=deepseek_v3_config_from_hf,
        config_to_hf=deepseek_v3_config_to_hf,
    ),
    kind="decoder",
    description="DeepSeek-V3 (multi-head latent attention with a compressed KV cache, "
    "sigmoid-routed group-limited mixture of experts).",
)


def get_deepseek_v3_model_hub() -> ModelHub[DeepseekV3Model, DeepseekV3Config]:
    """Return the typed hub of the DeepSeek-V3 family.

    Example:
        >>> hub = get_deepseek_v3_model_hub()
        >>> model = hub.load_model("deepseek_v3_tiny")   # typed as DeepseekV3Model
    """
    return get_model_hub(deepseek_v3_family)


__all__ = [
    "DEEPSEEK_V3_FAMILY",
    "DeepseekV3Config",
    "DeepseekV3Model",
    "deepseek_v3_archs",
    "deepseek_v3_family",
    "get_deepseek_v3_model_hub",
]
