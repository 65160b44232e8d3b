"""The autoregressive LM type (ARLM): collators, loss and predictor written to fit each other."""

from lmhub.lm.arlm.collators import (
    ARLMPretrainCollator,
    ARLMSeq2SeqCollator,
    ARLMSeq2SeqPredictionCollator,
)
from lmhub.lm.arlm.loss import ARLMLoss
from lmhub.lm.arlm.predictor import ARLMPredictor, pad_id_of
from lmhub.lm.arlm.types import IGNORE_INDEX, ARLMBatch, ARLMPredictionBatch

__all__ = [
    "IGNORE_INDEX",
    "ARLMBatch",
    "ARLMLoss",
    "ARLMPredictionBatch",
    "ARLMPredictor",
    "ARLMPretrainCollator",
    "ARLMSeq2SeqCollator",
    "ARLMSeq2SeqPredictionCollator",
    "pad_id_of",
]
