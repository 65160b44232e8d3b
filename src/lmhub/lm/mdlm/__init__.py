"""The masked-diffusion LM type (MDLM): absorbing-state diffusion with the log-linear schedule."""

from lmhub.lm.mdlm.collators import (
    MDLMPretrainCollator,
    MDLMSeq2SeqCollator,
    MDLMSeq2SeqPredictionCollator,
    noise_batch,
)
from lmhub.lm.mdlm.loss import MDLMLoss
from lmhub.lm.mdlm.model import MDLMModel
from lmhub.lm.mdlm.predictor import MDLMPredictor
from lmhub.lm.mdlm.schedule import LogLinearSchedule, sample_times
from lmhub.lm.mdlm.types import MDLMBatch, MDLMPredictionBatch

__all__ = [
    "LogLinearSchedule",
    "MDLMBatch",
    "MDLMLoss",
    "MDLMModel",
    "MDLMPredictionBatch",
    "MDLMPredictor",
    "MDLMPretrainCollator",
    "MDLMSeq2SeqCollator",
    "MDLMSeq2SeqPredictionCollator",
    "noise_batch",
    "sample_times",
]
