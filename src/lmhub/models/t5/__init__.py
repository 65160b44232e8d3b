"""The T5 family (T5 v1.1 and Flan-T5 encoder-decoders)."""

from typing import Final

from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub
from lmhub.models.t5.config import T5_FAMILY, T5Config, t5_archs
from lmhub.models.t5.interop import T5_WEIGHT_MAP, t5_config_from_hf, t5_config_to_hf
from lmhub.models.t5.model import T5Model

t5_family: Final[ModelFamily[T5Model, T5Config]] = ModelFamily(
    name=T5_FAMILY,
    model_class=T5Model,
    config_class=T5Config,
    archs=t5_archs,
    builder=T5Model,
    weight_map=T5_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("t5",),
        architectures=("T5ForConditionalGeneration",),
        config_from_hf=t5_config_from_hf,
        config_to_hf=t5_config_to_hf,
    ),
    kind="encoder_decoder",
    description="Google's T5 v1.1 / Flan-T5 (relative position buckets, RMS norm, gated GELU).",
)


def get_t5_model_hub() -> ModelHub[T5Model, T5Config]:
    """Return the typed hub of the T5 family.

    Example:
        >>> model = get_t5_model_hub().create_new_model("t5_tiny")   # typed as T5Model
    """
    return get_model_hub(t5_family)


__all__ = ["T5_FAMILY", "T5Config", "T5Model", "get_t5_model_hub", "t5_archs", "t5_family"]
