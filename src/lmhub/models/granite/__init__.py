"""The Granite 3 family (2B, 8B)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.granite.config import GRANITE_FAMILY, GraniteConfig, granite_archs
from lmhub.models.granite.interop import granite_config_from_hf, granite_config_to_hf
from lmhub.models.granite.model import GraniteModel
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP
from lmhub.models.llama.tp import llama_tp_plan

granite_family: Final[ModelFamily[GraniteModel, GraniteConfig]] = ModelFamily(
    name=GRANITE_FAMILY,
    model_class=GraniteModel,
    config_class=GraniteConfig,
    archs=granite_archs,
    builder=GraniteModel,
    weight_map=LLAMA_WEIGHT_MAP,  # HF Granite checkpoints use Llama's key layout
    hf=HfInterop(
        model_types=("granite",),
        architectures=("GraniteForCausalLM",),
        config_from_hf=granite_config_from_hf,
        config_to_hf=granite_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="IBM's Granite 3 decoders (Llama with embedding, residual, attention and "
    "logit multipliers).",
)


def get_granite_model_hub() -> ModelHub[GraniteModel, GraniteConfig]:
    """Return the typed hub of the Granite family.

    Example:
        >>> hub = get_granite_model_hub()
        >>> model = hub.load_model("granite3_8b")   # typed as GraniteModel
    """
    return get_model_hub(granite_family)


__all__ = [
    "GRANITE_FAMILY",
    "GraniteConfig",
    "GraniteModel",
    "get_granite_model_hub",
    "granite_archs",
    "granite_family",
]
