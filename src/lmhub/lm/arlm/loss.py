"""The ARLM loss: next-token cross-entropy, normalised by the number of target tokens."""

from __future__ import annotations

from typing import Any

import torch

from lmhub.data.packing import document_mask
from lmhub.lm.arlm.types import IGNORE_INDEX, ARLMBatch
from lmhub.lm.cross_entropy import CHUNK_SIZE, head_cross_entropy
from lmhub.lm.protocols import LossOutput
from lmhub.models.decoder import DecoderLM

__all__ = ["ARLMLoss"]


class ARLMLoss:
    """Shifted cross-entropy of a decoder: position ``i`` predicts ``labels[i + 1]``.

    The model runs up to its final hidden states (``return_hidden=True``); only the positions
    that have a target are projected by the output head, a chunk at a time
    (:func:`~lmhub.lm.cross_entropy.linear_cross_entropy`, or
    :func:`~lmhub.lm.cross_entropy.chunked_cross_entropy` for a family that overrides
    ``logits``), so the full float32 logits and their gradient never exist. Packed batches
    (with ``document_ids``) attend within documents only.

    Returns ``loss`` (mean over target tokens), ``loss_sum`` and ``num_tokens``: a trainer
    accumulating micro-batches divides the summed ``loss_sum`` by the summed ``num_tokens``.
    A model with an auxiliary loss (a mixture of experts' load balancing) adds ``aux_loss``.

    Example:
        >>> loss = ARLMLoss(model)  # doctest: +SKIP
        >>> loss.loss_fn(ARLMPretrainCollator(pad_token_id=0)(examples))["loss"]  # doctest: +SKIP
    """

    def __init__(self, model: DecoderLM, *, chunk_size: int = CHUNK_SIZE) -> None:
        """``chunk_size``: positions projected to the vocabulary at a time."""
        self.model = model
        self.chunk_size = chunk_size

    def configure(self, trainer: Any) -> None:
        """Nothing to set up: the loss reads the model's head at each call."""

    def loss_fn(self, batch: ARLMBatch, *, dataloader_name: str | None = None) -> LossOutput:
        """Return ``loss``, ``loss_sum`` and ``num_tokens`` for ``batch``."""
        hidden = self.hidden_states(batch)
        labels = batch["labels"][:, 1:]
        scored = labels != IGNORE_INDEX
        scored_hidden, targets = hidden[:, :-1][scored], labels[scored]
        loss_sum = head_cross_entropy(
            self.model, scored_hidden, targets, chunk_size=self.chunk_size
        )
        num_tokens = scored.sum()
        out: LossOutput = {
            "loss": loss_sum / num_tokens.clamp(min=1),
            "loss_sum": loss_sum,
            "num_tokens": num_tokens,
        }
        aux = self.model.auxiliary_loss() if hasattr(self.model, "auxiliary_loss") else None
        if aux is not None:  # e.g. the MoE load-balancing loss of this forward
            out["aux_loss"] = aux
        return out

    def hidden_states(self, batch: ARLMBatch) -> torch.Tensor:
        """Run the model on ``batch`` up to its final hidden states ``[batch, seq, dim]``."""
        mask: torch.Tensor | None = batch["attention_mask"]
        docs = batch.get("document_ids")
        if docs is not None and not (bool((docs == docs[:, :1]).all()) and bool(mask.all())):
            mask = document_mask(docs)
        elif mask is not None and bool(mask.all()):
            # no padding, one document per row: the kernel's own causal mask is the same, faster
            mask = None
        return self.model(
            batch["input_ids"],
            attention_mask=mask,
            position_ids=batch.get("position_ids"),
            return_hidden=True,
        )
