"""The Llama family (Llama 2, Llama 3, 3.1, 3.2)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.config import LLAMA_FAMILY, LlamaConfig, llama_archs
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP, llama_config_from_hf, llama_config_to_hf
from lmhub.models.llama.model import LlamaModel
from lmhub.models.llama.tp import llama_tp_plan

llama_family: Final[ModelFamily[LlamaModel, LlamaConfig]] = ModelFamily(
    name=LLAMA_FAMILY,
    model_class=LlamaModel,
    config_class=LlamaConfig,
    archs=llama_archs,
    builder=LlamaModel,
    weight_map=LLAMA_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("llama",),
        architectures=("LlamaForCausalLM",),
        config_from_hf=llama_config_from_hf,
        config_to_hf=llama_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Meta's Llama 2 / 3 / 3.1 / 3.2 decoders (RMSNorm, RoPE, GQA, SwiGLU).",
)


def get_llama_model_hub() -> ModelHub[LlamaModel, LlamaConfig]:
    """Return the typed hub of the Llama family.

    Example:
        >>> hub = get_llama_model_hub()
        >>> model = hub.load_model("llama3_2_1b")   # typed as LlamaModel
    """
    return get_model_hub(llama_family)


__all__ = [
    "LLAMA_FAMILY",
    "LlamaConfig",
    "LlamaModel",
    "get_llama_model_hub",
    "llama_archs",
    "llama_family",
]
