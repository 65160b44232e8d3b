"""The BERT family: BERT (base and large, uncased) and RoBERTa (base and large)."""

from typing import Final

from lmhub.models.bert.config import BERT_FAMILY, BertConfig, bert_archs
from lmhub.models.bert.interop import BERT_WEIGHT_MAP, bert_config_from_hf, bert_config_to_hf
from lmhub.models.bert.model import BertModel
from lmhub.models.family import HfInterop, ModelFamily
from lmhub.models.hub import ModelHub, get_model_hub

bert_family: Final[ModelFamily[BertModel, BertConfig]] = ModelFamily(
    name=BERT_FAMILY,
    model_class=BertModel,
    config_class=BertConfig,
    archs=bert_archs,
    builder=BertModel,
    weight_map=BERT_WEIGHT_MAP,
    hf=HfInterop(
        model_types=("bert", "roberta"),
        architectures=("BertForMaskedLM",),
        config_from_hf=bert_config_from_hf,
        config_to_hf=bert_config_to_hf,
    ),
    kind="encoder",
    description="BERT and RoBERTa encoders (post-LayerNorm, learned positions, masked-LM head).",
)


def get_bert_model_hub() -> ModelHub[BertModel, BertConfig]:
    """Return the typed hub of the BERT family.

    Example:
        >>> model = get_bert_model_hub().load_model("bert_base_uncased")   # typed as BertModel
    """
    return get_model_hub(bert_family)


__all__ = [
    "BERT_FAMILY",
    "BertConfig",
    "BertModel",
    "bert_archs",
    "bert_family",
    "get_bert_model_hub",
]
