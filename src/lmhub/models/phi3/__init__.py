"""The Phi-3 family: Phi-3-mini/medium, Phi-3.5-mini and Phi-4-mini."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.models.phi3.config import PHI3_FAMILY, Phi3Config, phi3_archs
from lmhub.models.phi3.interop import PHI3_WEIGHT_MAP, phi3_config_from_hf, phi3_config_to_hf
from lmhub.models.phi3.model import Phi3Model

phi3_family: Final[ModelFamily[Phi3Model, Phi3Config]] = ModelFamily(
    name=PHI3_FAMILY,
    model_class=Phi3Model,
    config_class=Phi3Config,
    archs=phi3_archs,
    builder=Phi3Model,
    weight_map=PHI3_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("phi3",),
        architectures=("Phi3ForCausalLM",),
        config_from_hf=phi3_config_from_hf,
        config_to_hf=phi3_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Microsoft's Phi-3/3.5 and Phi-4-mini decoders (Llama with fused qkv and "
    "gate/up projections, longrope scaling, partial rotary).",
)


def get_phi3_model_hub() -> ModelHub[Phi3Model, Phi3Config]:
    """Return the typed hub of the Phi-3 family.

    Example:
        >>> hub = get_phi3_model_hub()
        >>> model = hub.load_model("phi3_mini_4k")   # typed as Phi3Model
    """
    return get_model_hub(phi3_family)


__all__ = [
    "PHI3_FAMILY",
    "Phi3Config",
    "Phi3Model",
    "get_phi3_model_hub",
    "phi3_archs",
    "phi3_family",
]
