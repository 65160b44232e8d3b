"""The GPT-2 family (OpenAI's GPT-2 small, medium, large and XL)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.gpt2.config import GPT2_FAMILY, GPT2Config, gpt2_archs
from lmhub.models.gpt2.interop import GPT2_WEIGHT_MAP, gpt2_config_from_hf, gpt2_config_to_hf
from lmhub.models.gpt2.model import GPT2Model
from lmhub.models.gpt2.tp import mlp_decoder_tp_plan
from lmhub.models.hub import ModelHub, get_model_hub

gpt2_family: Final[ModelFamily[GPT2Model, GPT2Config]] = ModelFamily(
    name=GPT2_FAMILY,
    model_class=GPT2Model,
    config_class=GPT2Config,
    archs=gpt2_archs,
    builder=GPT2Model,
    weight_map=GPT2_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("gpt2",),
        architectures=("GPT2LMHeadModel",),
        config_from_hf=gpt2_config_from_hf,
        config_to_hf=gpt2_config_to_hf,
    ),
    kind="decoder",
    tp_plan=mlp_decoder_tp_plan,
    description="OpenAI's GPT-2 (learned positions, pre-LayerNorm, GELU MLP, tied head).",
)


def get_gpt2_model_hub() -> ModelHub[GPT2Model, GPT2Config]:
    """Return the typed hub of the GPT-2 family.

    Example:
        >>> model = get_gpt2_model_hub().load_model("gpt2")   # typed as GPT2Model
    """
    return get_model_hub(gpt2_family)


__all__ = [
    "GPT2_FAMILY",
    "GPT2Config",
    "GPT2Model",
    "get_gpt2_model_hub",
    "gpt2_archs",
    "gpt2_family",
]
