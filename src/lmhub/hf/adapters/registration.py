"""Registers the lmhub wrappers with transformers' Auto classes."""

from __future__ import annotations

from lmhub.hf.adapters.lmhub_model import (
    LmhubDecoderConfig,
    LmhubEncoderConfig,
    LmhubEncoderForSequenceClassification,
    LmhubEncoderModel,
    LmhubForCausalLM,
    LmhubForMaskedLM,
    LmhubForSequenceClassification,
    LmhubModel,
)
from lmhub.hf.adapters.lmhub_seq2seq import (
    LmhubForConditionalGeneration,
    LmhubSeq2SeqConfig,
    LmhubSeq2SeqModel,
)


def register() -> None:
    """Make ``AutoConfig``/``AutoModel*`` load directories saved from :func:`to_hf_api` models.

    Safe to call more than once.

    Example:
        >>> lmhub.hf.register()
        >>> to_hf_api(model).save_pretrained("out")
        >>> AutoModelForCausalLM.from_pretrained("out")
    """
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
    )

    AutoConfig.register(LmhubDecoderConfig.model_type, LmhubDecoderConfig, exist_ok=True)
    AutoConfig.register(LmhubEncoderConfig.model_type, LmhubEncoderConfig, exist_ok=True)
    AutoModel.register(LmhubDecoderConfig, LmhubModel, exist_ok=True)
    AutoModel.register(LmhubEncoderConfig, LmhubEncoderModel, exist_ok=True)
    AutoModelForCausalLM.register(LmhubDecoderConfig, LmhubForCausalLM, exist_ok=True)
    AutoModelForMaskedLM.register(LmhubEncoderConfig, LmhubForMaskedLM, exist_ok=True)
    AutoModelForSequenceClassification.register(
        LmhubDecoderConfig, LmhubForSequenceClassification, exist_ok=True
    )
    AutoModelForSequenceClassification.register(
        LmhubEncoderConfig, LmhubEncoderForSequenceClassification, exist_ok=True
    )
    AutoConfig.register(LmhubSeq2SeqConfig.model_type, LmhubSeq2SeqConfig, exist_ok=True)
    AutoModel.register(LmhubSeq2SeqConfig, LmhubSeq2SeqModel, exist_ok=True)
    AutoModelForSeq2SeqLM.register(LmhubSeq2SeqConfig, LmhubForConditionalGeneration, exist_ok=True)
