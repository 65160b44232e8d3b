"""The Qwen3.5 family (text): hybrid Gated DeltaNet / gated attention, dense and MoE."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.qwen3_5.config import QWEN3_5_FAMILY, Qwen3_5Config, qwen3_5_archs
from lmhub.models.qwen3_5.interop import (
    QWEN3_5_WEIGHT_MAP,
    qwen3_5_config_from_hf,
    qwen3_5_config_to_hf,
)
from lmhub.models.qwen3_5.model import Qwen3_5Model

qwen3_5_family: Final[ModelFamily[Qwen3_5Model, Qwen3_5Config]] = ModelFamily(
    name=QWEN3_5_FAMILY,
    model_class=Qwen3_5Model,
    config_class=Qwen3_5Config,
    archs=qwen3_5_archs,
    builder=Qwen3_5Model,
    weight_map=QWEN3_5_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("qwen3_5_text", "qwen3_5_moe_text", "qwen3_5", "qwen3_5_moe"),
        architectures=("Qwen3_5ForCausalLM",),
        config_from_hf=qwen3_5_config_from_hf,
        config_to_hf=qwen3_5_config_to_hf,
    ),
    kind="decoder",
    description="Alibaba's Qwen3.5 text decoders, dense and MoE (three Gated DeltaNet "
    "linear-attention layers to one gated full-attention layer).",
)


def get_qwen3_5_model_hub() -> ModelHub[Qwen3_5Model, Qwen3_5Config]:
    """Return the typed hub of the Qwen3.5 family.

    Example:
        >>> hub = get_qwen3_5_model_hub()
        >>> model = hub.load_model("qwen3_5_tiny")   # typed as Qwen3_5Model
    """
    return get_model_hub(qwen3_5_family)


__all__ = [
    "QWEN3_5_FAMILY",
    "Qwen3_5Config",
    "Qwen3_5Model",
    "get_qwen3_5_model_hub",
    "qwen3_5_archs",
    "qwen3_5_family",
]
