"""The encoder-decoder Transformer family (fairseq2's ``base``/``big``, NLLB's dense shapes)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.transformer.config import (
    TRANSFORMER_FAMILY,
    TransformerConfig,
    transformer_archs,
)
from lmhub.models.transformer.interop import (
    M2M100_WEIGHT_MAP,
    m2m100_config_from_hf,
    m2m100_config_to_hf,
)
from lmhub.models.transformer.model import TransformerModel

transformer_family: Final[ModelFamily[TransformerModel, TransformerConfig]] = ModelFamily(
    name=TRANSFORMER_FAMILY,
    model_class=TransformerModel,
    config_class=TransformerConfig,
    archs=transformer_archs,
    builder=TransformerModel,
    weight_map=M2M100_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("m2m_100",),
        architectures=("M2M100ForConditionalGeneration",),
        config_from_hf=m2m100_config_from_hf,
        config_to_hf=m2m100_config_to_hf,
    ),
    kind="encoder_decoder",
    description="The original encoder-decoder Transformer as fairseq2 ships it (NLLB shapes).",
)


def get_transformer_model_hub() -> ModelHub[TransformerModel, TransformerConfig]:
    """Return the typed hub of the transformer family.

    Example:
        >>> model = get_transformer_model_hub().create_new_model("transformer_tiny")
    """
    return get_model_hub(transformer_family)


__all__ = [
    "TRANSFORMER_FAMILY",
    "TransformerConfig",
    "TransformerModel",
    "get_transformer_model_hub",
    "transformer_archs",
    "transformer_family",
]
