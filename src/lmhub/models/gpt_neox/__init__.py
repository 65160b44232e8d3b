"""The GPT-NeoX family (EleutherAI's GPT-NeoX and the Pythia suite)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.gpt2.tp import mlp_decoder_tp_plan
from lmhub.models.gpt_neox.config import GPT_NEOX_FAMILY, GPTNeoXConfig, gpt_neox_archs
from lmhub.models.gpt_neox.interop import (
    GPT_NEOX_WEIGHT_MAP,
    gpt_neox_config_from_hf,
    gpt_neox_config_to_hf,
)
from lmhub.models.gpt_neox.model import GPTNeoXModel
from lmhub.models.hub import ModelHub, get_model_hub

gpt_neox_family: Final[ModelFamily[GPTNeoXModel, GPTNeoXConfig]] = ModelFamily(
    name=GPT_NEOX_FAMILY,
    model_class=GPTNeoXModel,
    config_class=GPTNeoXConfig,
    archs=gpt_neox_archs,
    builder=GPTNeoXModel,
    weight_map=GPT_NEOX_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("gpt_neox",),
        architectures=("GPTNeoXForCausalLM",),
        config_from_hf=gpt_neox_config_from_hf,
        config_to_hf=gpt_neox_config_to_hf,
    ),
    kind="decoder",
    tp_plan=mlp_decoder_tp_plan,
    description="EleutherAI's GPT-NeoX / Pythia (partial RoPE, parallel residual, LayerNorm, "
    "GELU MLP).",
)


def get_gpt_neox_model_hub() -> ModelHub[GPTNeoXModel, GPTNeoXConfig]:
    """Return the typed hub of the GPT-NeoX family.

    Example:
        >>> model = get_gpt_neox_model_hub().load_model("pythia_70m")   # typed as GPTNeoXModel
    """
    return get_model_hub(gpt_neox_family)


__all__ = [
    "GPT_NEOX_FAMILY",
    "GPTNeoXConfig",
    "GPTNeoXModel",
    "get_gpt_neox_model_hub",
    "gpt_neox_archs",
    "gpt_neox_family",
]
