"""The batches of the sequence-to-sequence LM type: what its collators make and its loss and
predictor read. The source goes to the encoder, the target to the decoder."""

from __future__ import annotations

from typing import TypedDict

import torch

from lmhub.lm.protocols import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "Seq2SeqBatch", "Seq2SeqPredictionBatch"]


class Seq2SeqBatch(TypedDict):
    """A training batch: right-padded sources and the targets as labels."""

    input_ids: torch.Tensor
    """``[batch, src]`` source ids, right-padded with the pad id."""
    attention_mask: torch.Tensor
    """``[batch, src]`` 1 for real source tokens, 0 for padding."""
    labels: torch.Tensor
    """``[batch, tgt]`` target ids, right-padded with ``IGNORE_INDEX``; the model reads them
    shifted right behind its decoder start token (teacher forcing) and predicts them as they
    are: position ``i`` predicts ``labels[i]``."""


class Seq2SeqPredictionBatch(TypedDict):
    """A prediction batch: right-padded sources and their gold targets."""

    input_ids: torch.Tensor
    """``[batch, src]`` source ids, right-padded with the pad id."""
    attention_mask: torch.Tensor
    """``[batch, src]`` 1 for real tokens, 0 for padding."""
    target_ids: torch.Tensor
    """``[batch, tgt]`` the gold targets, right-padded with ``IGNORE_INDEX``; kept for metrics."""
