"""The Gemma 3 text family: 1B, and the text towers of 4B, 12B and 27B."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.gemma2.interop import GEMMA2_WEIGHT_MAP
from lmhub.models.gemma3.config import GEMMA3_FAMILY, Gemma3Config, gemma3_archs
from lmhub.models.gemma3.interop import gemma3_config_from_hf, gemma3_config_to_hf
from lmhub.models.gemma3.model import Gemma3Model
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.tp import llama_tp_plan

gemma3_family: Final[ModelFamily[Gemma3Model, Gemma3Config]] = ModelFamily(
    name=GEMMA3_FAMILY,
    model_class=Gemma3Model,
    config_class=Gemma3Config,
    archs=gemma3_archs,
    builder=Gemma3Model,
    weight_map=GEMMA2_WEIGHT_MAP,  # Gemma 2's layout, plus the q/k norms its rules cover
    hf=HfInterop(
        model_types=("gemma3_text",),
        architectures=("Gemma3ForCausalLM",),
        config_from_hf=gemma3_config_from_hf,
        config_to_hf=gemma3_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Google's Gemma 3 text decoders (Gemma 2 with q/k norms, 5 sliding : 1 global "
    "layers, local and global RoPE bases, no softcaps).",
)


def get_gemma3_model_hub() -> ModelHub[Gemma3Model, Gemma3Config]:
    """Return the typed hub of the Gemma 3 family.

    Example:
        >>> hub = get_gemma3_model_hub()
        >>> model = hub.load_model("gemma3_1b")   # typed as Gemma3Model
    """
    return get_model_hub(gemma3_family)


__all__ = [
    "GEMMA3_FAMILY",
    "Gemma3Config",
    "Gemma3Model",
    "gemma3_archs",
    "gemma3_family",
    "get_gemma3_model_hub",
]
