"""Hugging Face adapters: the transformers model API over native lmhub and plain PyTorch models.

* :func:`to_hf_api` wraps a native lmhub model (``generate()``, pipelines, ``Trainer``,
  ``save_pretrained``/``from_pretrained``); :func:`register` adds its classes to the Auto classes.
* The FMS-style base classes adapt your own modules: write an :class:`HFDecoderAdapter` (or
  :class:`HFEncoderAdapter`) with one method, ``_adapt``, and combine an architecture class with a
  head mixin.
"""

from lmhub.hf.adapters.base import (
    HFAdapter,
    HFDecoderAdapter,
    HFDecoderModelArchitecture,
    HFEncoderAdapter,
    HFEncoderDecoderModelArchitecture,
    HFEncoderModelArchitecture,
    HFModelArchitecture,
)
from lmhub.hf.adapters.heads import (
    CausalLMHeadMixin,
    ConditionalGenerationLMHeadMixin,
    LMHeadMixin,
    MaskedLMHeadMixin,
    SequenceClassificationLMHeadMixin,
)
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
from lmhub.hf.adapters.registration import register
from lmhub.hf.adapters.wrap import to_hf_api

__all__ = [
    "CausalLMHeadMixin",
    "ConditionalGenerationLMHeadMixin",
    "HFAdapter",
    "HFDecoderAdapter",
    "HFDecoderModelArchitecture",
    "HFEncoderAdapter",
    "HFEncoderDecoderModelArchitecture",
    "HFEncoderModelArchitecture",
    "HFModelArchitecture",
    "LMHeadMixin",
    "LmhubDecoderConfig",
    "LmhubEncoderConfig",
    "LmhubEncoderForSequenceClassification",
    "LmhubEncoderModel",
    "LmhubForCausalLM",
    "LmhubForConditionalGeneration",
    "LmhubForMaskedLM",
    "LmhubForSequenceClassification",
    "LmhubModel",
    "LmhubSeq2SeqConfig",
    "LmhubSeq2SeqModel",
    "MaskedLMHeadMixin",
    "SequenceClassificationLMHeadMixin",
    "register",
    "to_hf_api",
]
