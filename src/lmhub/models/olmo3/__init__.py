"""The OLMo 3 family: 7B and 32B."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.models.olmo2.interop import OLMO2_WEIGHT_MAP
from lmhub.models.olmo3.config import OLMO3_FAMILY, Olmo3Config, olmo3_archs
from lmhub.models.olmo3.interop import olmo3_config_from_hf, olmo3_config_to_hf
from lmhub.models.olmo3.model import Olmo3Model

olmo3_family: Final[ModelFamily[Olmo3Model, Olmo3Config]] = ModelFamily(
    name=OLMO3_FAMILY,
    model_class=Olmo3Model,
    config_class=Olmo3Config,
    archs=olmo3_archs,
    builder=Olmo3Model,
    weight_map=OLMO2_WEIGHT_MAP,  # HF OLMo 3 checkpoints use OLMo 2's key layout
    hf=HfInterop(
        model_types=("olmo3",),
        architectures=("Olmo3ForCausalLM",),
        config_from_hf=olmo3_config_from_hf,
        config_to_hf=olmo3_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="AI2's OLMo 3 decoders (OLMo 2 with three sliding-window layers to one full "
    "layer; YaRN on the full layers only).",
)


def get_olmo3_model_hub() -> ModelHub[Olmo3Model, Olmo3Config]:
    """Return the typed hub of the OLMo 3 family.

    Example:
        >>> hub = get_olmo3_model_hub()
        >>> model = hub.load_model("olmo3_7b")   # typed as Olmo3Model
    """
    return get_model_hub(olmo3_family)


__all__ = [
    "OLMO3_FAMILY",
    "Olmo3Config",
    "Olmo3Model",
    "get_olmo3_model_hub",
    "olmo3_archs",
    "olmo3_family",
]
