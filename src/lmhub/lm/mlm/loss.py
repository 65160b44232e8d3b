"""The MLM loss: cross-entropy on the selected (masked, replaced or kept) positions."""

from __future__ import annotations

from typing import Any

import torch

from lmhub.data.packing import document_mask
from lmhub.lm.cross_entropy import CHUNK_SIZE, head_cross_entropy
from lmhub.lm.mlm.types import IGNORE_INDEX, MLMBatch
from lmhub.lm.protocols import LossOutput
from lmhub.models.decoder import DecoderLM

__all__ = ["MLMLoss", "bidirectional_hidden"]


def bidirectional_hidden(model: DecoderLM, batch: Any) -> torch.Tensor:
    """Run ``model`` bidirectionally on ``batch`` (``input_ids``, ``attention_mask``, and for
    packed rows ``position_ids``/``document_ids``); return the final hidden states."""
    mask: torch.Tensor | None = batch["attention_mask"]
    docs = batch.get("document_ids")
    if docs is not None and not bool((docs == docs[:, :1]).all()):
        mask = document_mask(docs, causal=False)
    elif mask is not None and bool(mask.all()):
        mask = None  # no padding: the unmasked kernel is the same, faster
    return model(
        batch["input_ids"],
        attention_mask=mask,
        position_ids=batch.get("position_ids"),
        causal=False,
        return_hidden=True,
    )


class MLMLoss:
    """Cross-entropy of the bidirectional backbone at each labelled position against the
    original token (no shift), projected a chunk at a time
    (:func:`~lmhub.lm.cross_entropy.head_cross_entropy`).

    Returns ``loss`` (mean over labelled tokens), ``loss_sum`` and ``num_tokens``.
    """

    def __init__(self, model: DecoderLM, *, chunk_size: int = CHUNK_SIZE) -> None:
        """``chunk_size``: positions projected to the vocabulary at a time."""
        self.model = model
        self.chunk_size = chunk_size

    def configure(self, trainer: Any) -> None:
        """Nothing to set up."""

    def loss_fn(self, batch: MLMBatch, *, dataloader_name: str | None = None) -> LossOutput:
        """Return ``loss``, ``loss_sum`` and ``num_tokens`` for ``batch``."""
        hidden = bidirectional_hidden(self.model, batch)
        scored = batch["labels"] != IGNORE_INDEX
        loss_sum = head_cross_entropy(
            self.model, hidden[scored], batch["labels"][scored], chunk_size=self.chunk_size
        )
        num_tokens = scored.sum()
        return {
            "loss": loss_sum / num_tokens.clamp(min=1),
            "loss_sum": loss_sum,
            "num_tokens": num_tokens,
        }
