"""The batches of the insertion LM type (ILM): what its collators make and its loss and
predictor read."""

from __future__ import annotations

from typing import TypedDict

import torch

from lmhub.lm.protocols import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "ILMBatch", "ILMPredictionBatch"]


class ILMBatch(TypedDict):
    """A training batch: sequences with tokens deleted, and where each deleted token belongs.

    Position ``j``'s *gap* is the slot just right of token ``j``; a deleted token belongs to the
    gap of the nearest kept token on its left (the CLS token, or the prompt's last token, for a
    leading gap).
    """

    input_ids: torch.Tensor
    """``[batch, seq]`` the CLS token, the prompt, then the kept tokens; right-padded."""
    attention_mask: torch.Tensor
    """``[batch, seq]`` 1 for real tokens, 0 for padding."""
    insert_mask: torch.Tensor
    """``[batch, seq]`` 1 where the gap may receive tokens (never inside the prompt)."""
    gap_index: torch.Tensor
    """``[deleted]`` for each deleted token of the batch, ``row * seq + position`` of its gap."""
    gap_token: torch.Tensor
    """``[deleted]`` the deleted token ids, aligned with ``gap_index``."""
    num_deleted: torch.Tensor
    """``[batch]`` how many tokens each row lost (0: the row is complete: the stop label)."""


class ILMPredictionBatch(TypedDict):
    """A prediction batch: the CLS token and each prompt, where insertion starts."""

    input_ids: torch.Tensor
    """``[batch, seq]`` the CLS token then the prompt, right-padded."""
    attention_mask: torch.Tensor
    """``[batch, seq]`` 1 for real tokens, 0 for padding."""
    insert_mask: torch.Tensor
    """``[batch, seq]`` 1 at each row's last prompt token (or the CLS token): the only gap
    open at the start; every inserted token opens its own."""
    target_ids: torch.Tensor
    """``[batch, target]`` the gold targets, right-padded with ``IGNORE_INDEX``; never fed to
    the model, kept for metrics."""
