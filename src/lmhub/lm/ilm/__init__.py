"""The insertion LM type (ILM): learn to insert deleted tokens anywhere, and when to stop."""

from lmhub.lm.ilm.collators import (
    ILMPretrainCollator,
    ILMSeq2SeqCollator,
    ILMSeq2SeqPredictionCollator,
    delete,
)
from lmhub.lm.ilm.loss import ILMLoss, insertion_log_probs
from lmhub.lm.ilm.model import ILMModel
from lmhub.lm.ilm.predictor import ILMPredictor
from lmhub.lm.ilm.types import ILMBatch, ILMPredictionBatch

__all__ = [
    "ILMBatch",
    "ILMLoss",
    "ILMModel",
    "ILMPredictionBatch",
    "ILMPredictor",
    "ILMPretrainCollator",
    "ILMSeq2SeqCollator",
    "ILMSeq2SeqPredictionCollator",
    "delete",
    "insertion_log_probs",
]
