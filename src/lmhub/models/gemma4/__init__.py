"""The Gemma 4 text family: E2B, E4B, 31B and the 26B-A4B mixture of experts."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.gemma4.config import GEMMA4_FAMILY, Gemma4Config, gemma4_archs
from lmhub.models.gemma4.interop import (
    GEMMA4_WEIGHT_MAP,
    gemma4_config_from_hf,
    gemma4_config_to_hf,
)
from lmhub.models.gemma4.model import Gemma4Model
from lmhub.models.gemma4.tp import gemma4_tp_plan
from lmhub.models.hub import ModelHub, get_model_hub

gemma4_family: Final[ModelFamily[Gemma4Model, Gemma4Config]] = ModelFamily(
    name=GEMMA4_FAMILY,
    model_class=Gemma4Model,
    config_class=Gemma4Config,
    archs=gemma4_archs,
    builder=Gemma4Model,
    weight_map=GEMMA4_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("gemma4_text", "gemma4"),
        architectures=("Gemma4ForCausalLM",),
        config_from_hf=gemma4_config_from_hf,
        config_to_hf=gemma4_config_to_hf,
    ),
    kind="decoder",
    tp_plan=gemma4_tp_plan,
    description="Google's Gemma 4 text decoders, dense and MoE (5 sliding : 1 global layers "
    "with wider global heads and proportional RoPE, per-layer embeddings, KV sharing between "
    "layers, value norms, a dense GeGLU beside the experts).",
)


def get_gemma4_model_hub() -> ModelHub[Gemma4Model, Gemma4Config]:
    """Return the typed hub of the Gemma 4 family.

    Example:
        >>> hub = get_gemma4_model_hub()
        >>> model = hub.load_model("gemma4_tiny")   # typed as Gemma4Model
    """
    return get_model_hub(gemma4_family)


__all__ = [
    "GEMMA4_FAMILY",
    "Gemma4Config",
    "Gemma4Model",
    "gemma4_archs",
    "gemma4_family",
    "get_gemma4_model_hub",
]
