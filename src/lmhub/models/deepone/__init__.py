"""The DeepOne family: a DeepNet-normed ALiBi decoder with no Hugging Face counterpart."""

from typing import Final

from lmhub.models.deepone.config import DEEPONE_FAMILY, DeepOneConfig, deepone_archs
from lmhub.models.deepone.model import DeepOneModel
from lmhub.models.family import ModelFamily

deepone_family: Final[ModelFamily[DeepOneModel, DeepOneConfig]] = ModelFamily(
    name=DEEPONE_FAMILY,
    model_class=DeepOneModel,
    config_class=DeepOneConfig,
    archs=deepone_archs,
    builder=DeepOneModel,
    kind="decoder",
    description="DeepNet post-norm decoder with trainable ALiBi, GQA and a ReLU-GLU (no position "
    "table; extrapolates in length).",
)


def get_deepone_model_hub():
    """Return the typed hub of the DeepOne family: ``ModelHub[DeepOneModel, DeepOneConfig]``."""
    from lmhub.models.hub import get_model_hub

    return get_model_hub(deepone_family)


__all__ = [
    "DEEPONE_FAMILY",
    "DeepOneConfig",
    "DeepOneModel",
    "deepone_archs",
    "deepone_family",
    "get_deepone_model_hub",
]
