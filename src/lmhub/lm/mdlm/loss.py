"""The MDLM loss: the continuous-time NELBO of absorbing-state diffusion, per token."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from lmhub.lm.mdlm.model import MDLMModel
from lmhub.lm.mdlm.schedule import LogLinearSchedule
from lmhub.lm.mdlm.types import IGNORE_INDEX, MDLMBatch
from lmhub.lm.protocols import LossOutput

__all__ = ["MDLMLoss"]


class MDLMLoss:
    """Cross-entropy of the masked tokens weighted by ``sigma'(t) / expm1(sigma(t))`` (``1 / t``).

    As the MDLM paper reports it, the NELBO is per diffused token: the weighted sum over the
    masked tokens divided by *all* diffused tokens (masked or not), so ``exp(loss)`` bounds the
    perplexity. Only masked positions are projected to the vocabulary.

    Returns ``loss``, ``loss_sum``, ``num_tokens`` (diffused tokens) and, for metrics,
    ``num_masked``, ``masked_correct`` (arg-max right at masked positions) and
    ``masked_ce_sum`` (the unweighted cross-entropy summed over masked tokens).

    Example:
        >>> loss = MDLMLoss(MDLMModel(backbone, mask_token_id=259))  # doctest: +SKIP
        >>> loss.loss_fn(MDLMPretrainCollator(pad_token_id=258, mask_token_id=259)(examples))
    """

    def __init__(self, model: MDLMModel, *, schedule: LogLinearSchedule | None = None) -> None:
        self.model = model
        self.schedule = schedule or LogLinearSchedule()

    def configure(self, trainer: Any) -> None:
        """Nothing to set up."""

    def loss_fn(self, batch: MDLMBatch, *, dataloader_name: str | None = None) -> LossOutput:
        """Return the per-token NELBO of ``batch`` and its parts."""
        t = batch["t"].float()
        hidden = self.model(
            batch["input_ids"],
            sigma=self.schedule.sigma(t),
            attention_mask=batch["attention_mask"],
            position_ids=batch.get("position_ids"),
            document_ids=batch.get("document_ids"),
            return_hidden=True,
        )
        labels = batch["labels"]
        masked = labels != IGNORE_INDEX
        logits = self.model.logits(hidden[masked])
        targets = labels[masked]
        ce = F.cross_entropy(logits, targets, reduction="none")
        weight = self.schedule.weight(t)[:, None].expand(labels.shape)[masked]
        loss_sum = (weight * ce).sum()
        num_tokens = batch["diffused_mask"].sum()
        return {  # type: ignore[typeddict-unknown-key]
            "loss": loss_sum / num_tokens.clamp(min=1),
            "loss_sum": loss_sum,
            "num_tokens": num_tokens,
            "num_masked": masked.sum(),
            "masked_correct": (logits.detach().argmax(-1) == targets).sum(),
            "masked_ce_sum": ce.detach().sum(),
        }
