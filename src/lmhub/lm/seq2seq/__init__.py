"""The sequence-to-sequence LM type, for encoder-decoder families (T5, transformer): collators,
teacher-forced loss and a greedy/beam predictor written to fit each other. Its metrics are
:class:`~lmhub.lm.metrics.Seq2SeqExactMatch` and :class:`~lmhub.lm.metrics.Seq2SeqTokenAccuracy`,
which the trainer computes on ``prediction`` loaders."""

from lmhub.lm.seq2seq.collators import Seq2SeqCollator, Seq2SeqPredictionCollator
from lmhub.lm.seq2seq.loss import Seq2SeqLoss
from lmhub.lm.seq2seq.predictor import Seq2SeqPredictor
from lmhub.lm.seq2seq.types import IGNORE_INDEX, Seq2SeqBatch, Seq2SeqPredictionBatch

__all__ = [
    "IGNORE_INDEX",
    "Seq2SeqBatch",
    "Seq2SeqCollator",
    "Seq2SeqLoss",
    "Seq2SeqPredictionBatch",
    "Seq2SeqPredictionCollator",
    "Seq2SeqPredictor",
]
