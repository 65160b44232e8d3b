"""The OLMo 2 family: 1B, 7B and 13B."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.models.olmo2.config import OLMO2_FAMILY, Olmo2Config, olmo2_archs
from lmhub.models.olmo2.interop import (
    OLMO2_WEIGHT_MAP,
    olmo2_config_from_hf,
    olmo2_config_to_hf,
)
from lmhub.models.olmo2.model import Olmo2Model

olmo2_family: Final[ModelFamily[Olmo2Model, Olmo2Config]] = ModelFamily(
    name=OLMO2_FAMILY,
    model_class=Olmo2Model,
    config_class=Olmo2Config,
    archs=olmo2_archs,
    builder=Olmo2Model,
    weight_map=OLMO2_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("olmo2",),
        architectures=("Olmo2ForCausalLM",),
        config_from_hf=olmo2_config_from_hf,
        config_to_hf=olmo2_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="AI2's OLMo 2 decoders (Llama with norms after the sublayers only and q/k "
    "RMSNorm over the whole projection).",
)


def get_olmo2_model_hub() -> ModelHub[Olmo2Model, Olmo2Config]:
    """Return the typed hub of the OLMo 2 family.

    Example:
        >>> hub = get_olmo2_model_hub()
        >>> model = hub.load_model("olmo2_7b")   # typed as Olmo2Model
    """
    return get_model_hub(olmo2_family)


__all__ = [
    "OLMO2_FAMILY",
    "Olmo2Config",
    "Olmo2Model",
    "get_olmo2_model_hub",
    "olmo2_archs",
    "olmo2_family",
]
