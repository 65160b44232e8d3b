"""The Qwen3 mixture-of-experts family (Qwen3-30B-A3B, Qwen3-235B-A22B)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.qwen3_moe.config import QWEN3_MOE_FAMILY, Qwen3MoeConfig, qwen3_moe_archs
from lmhub.models.qwen3_moe.interop import (
    QWEN3_MOE_WEIGHT_MAP,
    qwen3_moe_config_from_hf,
    qwen3_moe_config_to_hf,
)
from lmhub.models.qwen3_moe.model import Qwen3MoeModel

qwen3_moe_family: Final[ModelFamily[Qwen3MoeModel, Qwen3MoeConfig]] = ModelFamily(
    name=QWEN3_MOE_FAMILY,
    model_class=Qwen3MoeModel,
    config_class=Qwen3MoeConfig,
    archs=qwen3_moe_archs,
    builder=Qwen3MoeModel,
    weight_map=QWEN3_MOE_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("qwen3_moe",),
        architectures=("Qwen3MoeForCausalLM",),
        config_from_hf=qwen3_moe_config_from_hf,
        config_to_hf=qwen3_moe_config_to_hf,
    ),
    kind="decoder",
    description="Alibaba's Qwen3 mixture-of-experts decoders (128 narrow experts, 8 per token, "
    "per-head q/k norms).",
)


def get_qwen3_moe_model_hub() -> ModelHub[Qwen3MoeModel, Qwen3MoeConfig]:
    """Return the typed hub of the Qwen3-MoE family.

    Example:
        >>> hub = get_qwen3_moe_model_hub()
        >>> model = hub.load_model("qwen3_30b_a3b")   # typed as Qwen3MoeModel
    """
    return get_model_hub(qwen3_moe_family)


__all__ = [
    "QWEN3_MOE_FAMILY",
    "Qwen3MoeConfig",
    "Qwen3MoeModel",
    "get_qwen3_moe_model_hub",
    "qwen3_moe_archs",
    "qwen3_moe_family",
]
