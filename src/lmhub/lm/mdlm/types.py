"""The batches of the masked-diffusion LM type (MDLM): what its collators make and its loss and
predictor read."""

from __future__ import annotations

from typing import TypedDict

import torch
from typing_extensions import NotRequired

from lmhub.lm.protocols import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "MDLMBatch", "MDLMPredictionBatch"]


class MDLMBatch(TypedDict):
    """A training batch: sequences noised to a time ``t`` per row, and what was masked."""

    input_ids: torch.Tensor
    """``[batch, seq]`` the noised ids ``x_t``: some diffused tokens replaced by the mask id."""
    attention_mask: torch.Tensor
    """``[batch, seq]`` 1 for real tokens (prompt, target and its padding), 0 for batch padding."""
    labels: torch.Tensor
    """``[batch, seq]`` the clean id at each masked position, ``IGNORE_INDEX`` elsewhere."""
    diffused_mask: torch.Tensor
    """``[batch, seq]`` 1 where a token takes part in the diffusion (every real token when
    pre-training; the target and its padding in seq2seq): the NELBO is per such token."""
    t: torch.Tensor
    """``[batch]`` float32 diffusion time of each row, in ``(0, 1]``."""
    position_ids: NotRequired[torch.Tensor]
    """``[batch, seq]`` packed rows only: positions restarting at 0 at each document."""
    document_ids: NotRequired[torch.Tensor]
    """``[batch, seq]`` packed rows only: each token's document (-1 for padding); attention
    stays within a document."""


class MDLMPredictionBatch(TypedDict):
    """A prediction batch: each prompt followed by fully masked target positions."""

    input_ids: torch.Tensor
    """``[batch, seq]`` the prompt then ``target_length`` mask ids, right-padded."""
    attention_mask: torch.Tensor
    """``[batch, seq]`` 1 for prompt and target positions, 0 for batch padding."""
    diffused_mask: torch.Tensor
    """``[batch, seq]`` 1 on the positions to generate."""
    target_ids: torch.Tensor
    """``[batch, target]`` the gold targets, right-padded with ``IGNORE_INDEX``; never fed to
    the model, kept for metrics."""
