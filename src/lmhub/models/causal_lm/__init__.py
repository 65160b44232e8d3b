"""The causal_lm family: a plain post-LayerNorm decoder with sinusoidal positions."""

from typing import Final

from lmhub.models.causal_lm.config import CAUSAL_LM_FAMILY, CausalLMConfig, causal_lm_archs
from lmhub.models.causal_lm.model import CausalLMModel, sinusoidal_positions
from lmhub.models.family import ModelFamily

causal_lm_family: Final[ModelFamily[CausalLMModel, CausalLMConfig]] = ModelFamily(
    name=CAUSAL_LM_FAMILY,
    model_class=CausalLMModel,
    config_class=CausalLMConfig,
    archs=causal_lm_archs,
    builder=CausalLMModel,
    kind="decoder",
    description="A plain decoder-only transformer (post-LayerNorm, sinusoidal positions, ReLU "
    "MLP).",
)


def get_causal_lm_model_hub():
    """Return the typed hub of the family: ``ModelHub[CausalLMModel, CausalLMConfig]``."""
    from lmhub.models.hub import get_model_hub

    return get_model_hub(causal_lm_family)


__all__ = [
    "CAUSAL_LM_FAMILY",
    "CausalLMConfig",
    "CausalLMModel",
    "causal_lm_archs",
    "causal_lm_family",
    "get_causal_lm_model_hub",
    "sinusoidal_positions",
]
