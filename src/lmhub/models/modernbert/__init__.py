"""The ModernBERT family (Answer.AI and LightOn's ModernBERT base and large)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.modernbert.config import (
    MODERNBERT_FAMILY,
    ModernBertConfig,
    modernbert_archs,
)
from lmhub.models.modernbert.interop import (
    MODERNBERT_WEIGHT_MAP,
    modernbert_config_from_hf,
    modernbert_config_to_hf,
)
from lmhub.models.modernbert.model import ModernBertModel

modernbert_family: Final[ModelFamily[ModernBertModel, ModernBertConfig]] = ModelFamily(
    name=MODERNBERT_FAMILY,
    model_class=ModernBertModel,
    config_class=ModernBertConfig,
    archs=modernbert_archs,
    builder=ModernBertModel,
    weight_map=MODERNBERT_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("modernbert",),
        architectures=("ModernBertForMaskedLM",),
        config_from_hf=modernbert_config_from_hf,
        config_to_hf=modernbert_config_to_hf,
    ),
    kind="encoder",
    description="ModernBERT encoders (pre-LN, RoPE, alternating global/local attention, GeGLU).",
)


def get_modernbert_model_hub() -> ModelHub[ModernBertModel, ModernBertConfig]:
    """Return the typed hub of the ModernBERT family.

    Example:
        >>> model = get_modernbert_model_hub().load_model("modernbert_base")
    """
    return get_model_hub(modernbert_family)


__all__ = [
    "MODERNBERT_FAMILY",
    "ModernBertConfig",
    "ModernBertModel",
    "get_modernbert_model_hub",
    "modernbert_archs",
    "modernbert_family",
]
