"""The Gemma (1) family: 2B and 7B."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.gemma.config import GEMMA_FAMILY, GemmaConfig, gemma_archs
from lmhub.models.gemma.interop import gemma_config_from_hf, gemma_config_to_hf
from lmhub.models.gemma.model import GemmaModel
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP
from lmhub.models.llama.tp import llama_tp_plan

gemma_family: Final[ModelFamily[GemmaModel, GemmaConfig]] = ModelFamily(
    name=GEMMA_FAMILY,
    model_class=GemmaModel,
    config_class=GemmaConfig,
    archs=gemma_archs,
    builder=GemmaModel,
    weight_map=LLAMA_WEIGHT_MAP,  # HF Gemma checkpoints use Llama's key layout
    hf=HfInterop(
        model_types=("gemma",),
        architectures=("GemmaForCausalLM",),
        config_from_hf=gemma_config_from_hf,
        config_to_hf=gemma_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Google's Gemma 2B / 7B decoders ((1 + w) RMSNorm, sqrt(d) embedding scale, "
    "GeGLU, tied embeddings).",
)


def get_gemma_model_hub() -> ModelHub[GemmaModel, GemmaConfig]:
    """Return the typed hub of the Gemma family.

    Example:
        >>> hub = get_gemma_model_hub()
        >>> model = hub.load_model("gemma_2b")   # typed as GemmaModel
    """
    return get_model_hub(gemma_family)


__all__ = [
    "GEMMA_FAMILY",
    "GemmaConfig",
    "GemmaModel",
    "gemma_archs",
    "gemma_family",
    "get_gemma_model_hub",
]
