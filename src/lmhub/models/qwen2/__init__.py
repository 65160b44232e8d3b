"""The Qwen2 family (Qwen2 and Qwen2.5, 0.5B to 72B)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.llama.interop import LLAMA_WEIGHT_MAP
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.models.qwen2.config import QWEN2_FAMILY, Qwen2Config, qwen2_archs
from lmhub.models.qwen2.interop import qwen2_config_from_hf, qwen2_config_to_hf
from lmhub.models.qwen2.model import Qwen2Model

qwen2_family: Final[ModelFamily[Qwen2Model, Qwen2Config]] = ModelFamily(
    name=QWEN2_FAMILY,
    model_class=Qwen2Model,
    config_class=Qwen2Config,
    archs=qwen2_archs,
    builder=Qwen2Model,
    weight_map=LLAMA_WEIGHT_MAP,  # HF Qwen2 checkpoints use Llama's key layout
    hf=HfInterop(
        model_types=("qwen2",),
        architectures=("Qwen2ForCausalLM",),
        config_from_hf=qwen2_config_from_hf,
        config_to_hf=qwen2_config_to_hf,
    ),
    kind="decoder",
    tp_plan=llama_tp_plan,
    description="Alibaba's Qwen2 and Qwen2.5 decoders (Llama with q/k/v biases; optional "
    "sliding window on the upper layers).",
)


def get_qwen2_model_hub() -> ModelHub[Qwen2Model, Qwen2Config]:
    """Return the typed hub of the Qwen2 family.

    Example:
        >>> hub = get_qwen2_model_hub()
        >>> model = hub.load_model("qwen25_7b")   # typed as Qwen2Model
    """
    return get_model_hub(qwen2_family)


__all__ = [
    "QWEN2_FAMILY",
    "Qwen2Config",
    "Qwen2Model",
    "get_qwen2_model_hub",
    "qwen2_archs",
    "qwen2_family",
]
