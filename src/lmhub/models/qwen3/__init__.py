"""The dense Qwen3 family (0.6B to 32B)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.models.qwen3.config import QWEN3_FAMILY, Qwen3Config, qwen3_archs
from lmhub.models.qwen3.interop import qwen3_config_from_hf, qwen3_config_to_hf
from lmhub.models.qwen3.model import Qwen3Model

qwen3_family: Final[ModelFamily[Qwen3Model, Qwen3Config]] = ModelFamily(
    name=QWEN3_FAMILY,
    model_class=Qwen3Model,
    config_class=Qwen3Config,
    archs=qwen3_archs,
    builder=Qwen3Model,
    weight_map=LLAMA_WEIGHT_MAP,  # HF Qwen3 checkpoints use Llama's key layout (+ q/k norms)
    hf=HfInterop(
        model_types=("qwen3",),
        architectures=("Qwen3ForCausalLM",),
        config_from_hf=qwen3_config_from_hf,
        config_to_hf=qwen3_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Alibaba's dense Qwen3 decoders (Llama with per-head q/k RMSNorm and "
    "128-wide heads).",
)


def get_qwen3_model_hub() -> ModelHub[Qwen3Model, Qwen3Config]:
    """Return the typed hub of the Qwen3 family.

    Example:
        >>> hub = get_qwen3_model_hub()
        >>> model = hub.load_model("qwen3_8b")   # typed as Qwen3Model
    """
    return get_model_hub(qwen3_family)


__all__ = [
    "QWEN3_FAMILY",
    "Qwen3Config",
    "Qwen3Model",
    "get_qwen3_model_hub",
    "qwen3_archs",
    "qwen3_family",
]
