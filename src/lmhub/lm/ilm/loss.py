"""The ILM loss: cross-entropy over the joint (gap x token) distribution, plus a stop loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lmhub.lm.ilm.model import ILMModel
from lmhub.lm.ilm.types import ILMBatch
from lmhub.lm.protocols import LossOutput

__all__ = ["ILMLoss", "insertion_log_probs"]


def insertion_log_probs(logits: torch.Tensor, insert_mask: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``[batch, seq, vocab]`` of the joint distribution over (gap, token)
    of each row, closed gaps (``insert_mask`` 0) at ``-inf``."""
    b, s, v = logits.shape
    logits = logits.masked_fill(~insert_mask.bool()[..., None], float("-inf"))
    return logits.reshape(b, s * v).log_softmax(-1).reshape(b, s, v)


class ILMLoss:
    """Per row: the cross-entropy of the joint (gap x token) distribution against the
    normalised counts of the deleted tokens (``-mean`` of their log-probabilities; none for a
    complete row), plus the binary cross-entropy of the stop logit with the label "nothing
    was deleted" (when the model has a stop head).

    The loss is per row: ``loss_sum`` sums the rows' losses and ``num_tokens`` counts rows.
    The target has entropy (many orders insert the same tokens), so the loss does not reach 0.
    Also returned for logging: ``insertion_loss``, ``stop_loss`` (sums) and ``stop_correct``.

    Example:
        >>> loss = ILMLoss(ILMModel(backbone, cls_token_id=259))  # doctest: +SKIP
        >>> loss.loss_fn(ILMSeq2SeqCollator(pad_token_id=258, cls_token_id=259)(examples))
    """

    def __init__(self, model: ILMModel, *, stop_weight: float = 1.0) -> None:
        """``stop_weight``: the factor on the stop loss."""
        self.model = model
        self.stop_weight = stop_weight

    def configure(self, trainer: Any) -> None:
        """Nothing to set up."""

    def loss_fn(self, batch: ILMBatch, *, dataloader_name: str | None = None) -> LossOutput:
        """Return the loss of ``batch`` and its parts."""
        logits, stop = self.model(
            batch["input_ids"],
            attention_mask=batch["attention_mask"],
            insert_mask=batch["insert_mask"],
        )
        log_probs = insertion_log_probs(logits, batch["insert_mask"]).flatten()
        vocab = logits.shape[-1]
        num_deleted = batch["num_deleted"]
        rows = batch["gap_index"] // batch["input_ids"].shape[1]
        picked = log_probs[batch["gap_index"] * vocab + batch["gap_token"]]
        insertion = -(picked / num_deleted[rows].clamp(min=1)).sum()
        total = insertion
        out: dict[str, torch.Tensor] = {"insertion_loss": insertion.detach()}
        if stop is not None:
            complete = (num_deleted == 0).float()
            stop_loss = F.binary_cross_entropy_with_logits(stop, complete, reduction="sum")
            total = total + self.stop_weight * stop_loss
            out["stop_loss"] = stop_loss.detach()
            out["stop_correct"] = ((stop.detach() > 0) == (complete > 0)).sum()
        num_rows = torch.tensor(len(num_deleted), device=total.device)
        return {  # type: ignore[typeddict-item]
            "loss": total / num_rows,
            "loss_sum": total,
            "num_tokens": num_rows,
            **out,
        }
