"""The single-head family: one merged query-key head per layer, with a learned ALiBi slope."""

from typing import Final

from lmhub.models.family import ModelFamily
from lmhub.models.single_head.config import (
    SINGLE_HEAD_FAMILY,
    SingleHeadConfig,
    single_head_archs,
)
from lmhub.models.single_head.model import MergedQKAttention, SingleHeadModel

single_head_family: Final[ModelFamily[SingleHeadModel, SingleHeadConfig]] = ModelFamily(
    name=SINGLE_HEAD_FAMILY,
    model_class=SingleHeadModel,
    config_class=SingleHeadConfig,
    archs=single_head_archs,
    builder=SingleHeadModel,
    kind="decoder",
    description="One attention head per layer with a merged query-key matrix, no output "
    "projection and a trainable ALiBi slope.",
)


def get_single_head_model_hub():
    """Return the typed hub of the family: ``ModelHub[SingleHeadModel, SingleHeadConfig]``."""
    from lmhub.models.hub import get_model_hub

    return get_model_hub(single_head_family)


__all__ = [
    "SINGLE_HEAD_FAMILY",
    "MergedQKAttention",
    "SingleHeadConfig",
    "SingleHeadModel",
    "get_single_head_model_hub",
    "single_head_archs",
    "single_head_family",
]
