"""The batches of the masked LM type (MLM): what its collators make and its loss and predictor
read."""

from __future__ import annotations

from typing import TypedDict

import torch
from typing_extensions import NotRequired

from lmhub.lm.protocols import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "MLMBatch", "MLMPredictionBatch"]


class MLMBatch(TypedDict):
    """A training batch: sequences with some tokens corrupted, and the originals to recover."""

    input_ids: torch.Tensor
    """``[batch, seq]`` ids after corruption ([MASK], a random token, or kept), right-padded."""
    attention_mask: torch.Tensor
    """``[batch, seq]`` 1 for real tokens, 0 for padding."""
    labels: torch.Tensor
    """``[batch, seq]`` the original id at each selected position, ``IGNORE_INDEX`` elsewhere
    (no shift: position ``i`` predicts ``labels[i]``)."""
    position_ids: NotRequired[torch.Tensor]
    """``[batch, seq]`` packed rows only: positions restarting at 0 at each document."""
    document_ids: NotRequired[torch.Tensor]
    """``[batch, seq]`` packed rows only: each token's document (-1 for padding); attention
    stays within a document, in both directions."""


class MLMPredictionBatch(TypedDict):
    """A prediction batch: each prompt followed by [MASK] slots for the target, right-padded."""

    input_ids: torch.Tensor
    """``[batch, seq]`` prompt ids then ``[MASK]`` ids, right-padded with the pad id."""
    attention_mask: torch.Tensor
    """``[batch, seq]`` 1 for real tokens and slots, 0 for padding."""
    prompt_lengths: torch.Tensor
    """``[batch]`` how many leading ids of each row are the prompt."""
    target_ids: torch.Tensor
    """``[batch, target]`` the gold targets, right-padded with ``IGNORE_INDEX``; never fed to
    the model, kept for metrics."""
