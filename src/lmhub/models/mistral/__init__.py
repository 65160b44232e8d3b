"""The Mistral family (Mistral 7B v0.1 and v0.3)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.models.mistral.config import MISTRAL_FAMILY, MistralConfig, mistral_archs
from lmhub.models.mistral.interop import mistral_config_from_hf, mistral_config_to_hf
from lmhub.models.mistral.model import MistralModel

mistral_family: Final[ModelFamily[MistralModel, MistralConfig]] = ModelFamily(
    name=MISTRAL_FAMILY,
    model_class=MistralModel,
    config_class=MistralConfig,
    archs=mistral_archs,
    builder=MistralModel,
    weight_map=LLAMA_WEIGHT_MAP,  # HF Mistral checkpoints use Llama's key layout
    hf=HfInterop(
        model_types=("mistral",),
        architectures=("MistralForCausalLM",),
        config_from_hf=mistral_config_from_hf,
        config_to_hf=mistral_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Mistral AI's Mistral 7B (Llama layout, GQA, sliding-window attention).",
)


def get_mistral_model_hub() -> ModelHub[MistralModel, MistralConfig]:
    """Return the typed hub of the Mistral family.

    Example:
        >>> hub = get_mistral_model_hub()
        >>> model = hub.load_model("mistral_7b_v0_3")   # typed as MistralModel
    """
    return get_model_hub(mistral_family)


__all__ = [
    "MISTRAL_FAMILY",
    "MistralConfig",
    "MistralModel",
    "get_mistral_model_hub",
    "mistral_archs",
    "mistral_family",
]
