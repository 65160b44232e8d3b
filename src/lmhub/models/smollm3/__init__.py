"""The SmolLM3 family: SmolLM3 3B."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.models.smollm3.config import SMOLLM3_FAMILY, SmolLM3Config, smollm3_archs
from lmhub.models.smollm3.interop import smollm3_config_from_hf, smollm3_config_to_hf
from lmhub.models.smollm3.model import SmolLM3Model

smollm3_family: Final[ModelFamily[SmolLM3Model, SmolLM3Config]] = ModelFamily(
    name=SMOLLM3_FAMILY,
    model_class=SmolLM3Model,
    config_class=SmolLM3Config,
    archs=smollm3_archs,
    builder=SmolLM3Model,
    weight_map=LLAMA_WEIGHT_MAP,  # HF SmolLM3 checkpoints use Llama's key layout
    hf=HfInterop(
        model_types=("smollm3",),
        architectures=("SmolLM3ForCausalLM",),
        config_from_hf=smollm3_config_from_hf,
        config_to_hf=smollm3_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Hugging Face's SmolLM3 (Llama layout, GQA, tied embeddings, no RoPE on every "
    "fourth layer).",
)


def get_smollm3_model_hub() -> ModelHub[SmolLM3Model, SmolLM3Config]:
    """Return the typed hub of the SmolLM3 family.

    Example:
        >>> hub = get_smollm3_model_hub()
        >>> model = hub.load_model("smollm3_3b")   # typed as SmolLM3Model
    """
    return get_model_hub(smollm3_family)


__all__ = [
    "SMOLLM3_FAMILY",
    "SmolLM3Config",
    "SmolLM3Model",
    "get_smollm3_model_hub",
    "smollm3_archs",
    "smollm3_family",
]
