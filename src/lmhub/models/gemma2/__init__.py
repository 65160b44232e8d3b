"""The Gemma 2 family: 2B, 9B and 27B."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.gemma2.config import GEMMA2_FAMILY, Gemma2Config, gemma2_archs
from lmhub.models.gemma2.interop import (
    GEMMA2_WEIGHT_MAP,
    gemma2_config_from_hf,
    gemma2_config_to_hf,
)
from lmhub.models.gemma2.model import Gemma2Model
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.tp import llama_tp_plan

gemma2_family: Final[ModelFamily[Gemma2Model, Gemma2Config]] = ModelFamily(
    name=GEMMA2_FAMILY,
    model_class=Gemma2Model,
    config_class=Gemma2Config,
    archs=gemma2_archs,
    builder=Gemma2Model,
    weight_map=GEMMA2_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("gemma2",),
        architectures=("Gemma2ForCausalLM",),
        config_from_hf=gemma2_config_from_hf,
        config_to_hf=gemma2_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Google's Gemma 2 decoders (Gemma with sandwich norms, alternating "
    "sliding/global layers, query_pre_attn_scalar, attention and final-logit softcaps).",
)


def get_gemma2_model_hub() -> ModelHub[Gemma2Model, Gemma2Config]:
    """Return the typed hub of the Gemma 2 family.

    Example:
        >>> hub = get_gemma2_model_hub()
        >>> model = hub.load_model("gemma2_9b")   # typed as Gemma2Model
    """
    return get_model_hub(gemma2_family)


__all__ = [
    "GEMMA2_FAMILY",
    "Gemma2Config",
    "Gemma2Model",
    "gemma2_archs",
    "gemma2_family",
    "get_gemma2_model_hub",
]
