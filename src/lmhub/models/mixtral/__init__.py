"""The Mixtral family (Mixtral 8x7B and 8x22B)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.mixtral.config import MIXTRAL_FAMILY, MixtralConfig, mixtral_archs
from lmhub.models.mixtral.interop import (
    MIXTRAL_WEIGHT_MAP,
    mixtral_config_from_hf,
    mixtral_config_to_hf,
)
from lmhub.models.mixtral.model import MixtralModel

mixtral_family: Final[ModelFamily[MixtralModel, MixtralConfig]] = ModelFamily(
    name=MIXTRAL_FAMILY,
    model_class=MixtralModel,
    config_class=MixtralConfig,
    archs=mixtral_archs,
    builder=MixtralModel,
    weight_map=MIXTRAL_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("mixtral",),
        architectures=("MixtralForCausalLM",),
        config_from_hf=mixtral_config_from_hf,
        config_to_hf=mixtral_config_to_hf,
    ),
    kind="decoder",
    description="Mistral AI's sparse mixture-of-experts Mixtral (8 SwiGLU experts, top-2 "
    "softmax routing, GQA).",
)


def get_mixtral_model_hub() -> ModelHub[MixtralModel, MixtralConfig]:
    """Return the typed hub of the Mixtral family.

    Example:
        >>> hub = get_mixtral_model_hub()
        >>> model = hub.load_model("mixtral_8x7b")   # typed as MixtralModel
    """
    return get_model_hub(mixtral_family)


__all__ = [
    "MIXTRAL_FAMILY",
    "MixtralConfig",
    "MixtralModel",
    "get_mixtral_model_hub",
    "mixtral_archs",
    "mixtral_family",
]
