"""The batches of the autoregressive LM type (ARLM): what its collators make and its loss and
predictor read."""

from __future__ import annotations

from typing import TypedDict

import torch
from typing_extensions import NotRequired

from lmhub.lm.protocols import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "ARLMBatch", "ARLMPredictionBatch"]


class ARLMBatch(TypedDict):
    """A training batch: right-padded sequences and their labels."""

    input_ids: torch.Tensor
    """``[batch, seq]`` token ids, right-padded with the pad id."""
    attention_mask: torch.Tensor
    """``[batch, seq]`` 1 for real tokens, 0 for padding."""
    labels: torch.Tensor
    """``[batch, seq]`` the ids to predict, aligned with ``input_ids`` (the loss shifts them:
    position ``i`` predicts ``labels[i + 1]``); ``IGNORE_INDEX`` where no loss is taken."""
    position_ids: NotRequired[torch.Tensor]
    """``[batch, seq]`` packed rows only: positions restarting at 0 at each document."""
    document_ids: NotRequired[torch.Tensor]
    """``[batch, seq]`` packed rows only: the document of each token (-1 for padding);
    attention stays within a document."""


class ARLMPredictionBatch(TypedDict):
    """A prediction batch: left-padded prompts (ready to generate) and their gold targets."""

    input_ids: torch.Tensor
    """``[batch, prompt]`` prompt ids, left-padded with the pad id."""
    attention_mask: torch.Tensor
    """``[batch, prompt]`` 1 for real tokens, 0 for padding."""
    target_ids: torch.Tensor
    """``[batch, target]`` the gold targets, right-padded with ``IGNORE_INDEX``; never fed to
    the model, kept for metrics."""
