"""Metrics shared by the LM types: mean loss, perplexity, token accuracy and exact match.

Each metric is a small object: ``update(...)`` adds a batch, ``compute()`` returns the value
over everything added since the last ``reset()``. They keep Python numbers, so a metric costs
nothing between updates and its value does not depend on how the data was batched.

Two families score different things:

* :class:`TokenAccuracy` and :class:`ExactMatch` compare position-aligned predictions (the
  arg-max under teacher forcing) with labels, skipping positions labelled ``IGNORE_INDEX``;
  a seq2seq batch's labels already ignore the prompt.
* :class:`Seq2SeqTokenAccuracy` and :class:`Seq2SeqExactMatch` compare what a predictor
  generated with the gold target, scoring only the target part: predictions that include the
  prompt (as non-autoregressive types produce) drop it first via ``prompt_lengths``.

The trainer drives metrics through one signature, :class:`LmMetric`: ``update(batch, out)``
where ``out`` is a loss function's dict (``lm`` loaders) or a predictor's predictions
(``prediction`` loaders). :class:`LossMetric`, :class:`PerplexityMetric`,
:class:`PredictionExactMatch` and :class:`PredictionTokenAccuracy` wrap the metrics above so;
:func:`loss_metrics` and :func:`target_metrics` are the sets every type starts from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from lmhub.lm.protocols import IGNORE_INDEX

__all__ = [
    "IGNORE_INDEX",
    "ExactMatch",
    "LmMetric",
    "LossMetric",
    "MeanLoss",
    "Metric",
    "Perplexity",
    "PerplexityMetric",
    "PredictionExactMatch",
    "PredictionTokenAccuracy",
    "Seq2SeqExactMatch",
    "Seq2SeqTokenAccuracy",
    "TokenAccuracy",
    "loss_metrics",
    "target_metrics",
]


class Metric(Protocol):
    """What every metric offers (``update`` takes metric-specific arguments)."""

    def compute(self) -> float:
        """The value over everything added since the last reset (NaN when nothing was)."""
        ...

    def reset(self) -> None:
        """Forget everything added."""
        ...


class _Ratio:
    """A running ``numerator / denominator``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.numerator = 0.0
        self.denominator = 0

    def compute(self) -> float:
        return self.numerator / self.denominator if self.denominator else math.nan


class MeanLoss(_Ratio):
    """Mean loss per target token over many batches (not a mean of batch means).

    Example:
        >>> m = MeanLoss()
        >>> m.update(6.0, 2); m.update(1.0, 2)
        >>> m.compute()
        1.75
    """

    def update(self, loss_sum: torch.Tensor | float, num_tokens: torch.Tensor | int) -> None:
        """Add a batch's summed loss over its ``num_tokens`` target tokens."""
        self.numerator += float(loss_sum)
        self.denominator += int(num_tokens)


class Perplexity(MeanLoss):
    """``exp`` of the mean loss per target token (natural-log cross-entropy).

    Example:
        >>> m = Perplexity()
        >>> m.update(0.0, 3)
        >>> m.compute()
        1.0
    """

    def compute(self) -> float:
        return math.exp(super().compute())


class TokenAccuracy(_Ratio):
    """Fraction of scored positions where the prediction equals the label.

    Example:
        >>> m = TokenAccuracy()
        >>> m.update(torch.tensor([[1, 2, 3]]), torch.tensor([[-100, 2, 4]]))
        >>> m.compute()
        0.5
    """

    def update(self, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Add ``predictions`` and ``labels`` of the same shape (labels may be ``IGNORE_INDEX``)."""
        scored = labels != IGNORE_INDEX
        self.numerator += int(((predictions == labels) & scored).sum())
        self.denominator += int(scored.sum())


class ExactMatch(_Ratio):
    """Fraction of rows whose every scored position is predicted right (rows with none skipped).

    Example:
        >>> m = ExactMatch()
        >>> m.update(torch.tensor([[1, 2], [3, 4]]), torch.tensor([[-100, 2], [3, 5]]))
        >>> m.compute()
        0.5
    """

    def update(self, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Add ``[batch, seq]`` predictions and labels (labels may be ``IGNORE_INDEX``)."""
        scored = labels != IGNORE_INDEX
        right = ((predictions == labels) | ~scored).all(dim=-1)
        has_target = scored.any(dim=-1)
        self.numerator += int((right & has_target).sum())
        self.denominator += int(has_target.sum())


class Seq2SeqTokenAccuracy(_Ratio):
    """Fraction of target tokens a generated sequence gets right, position by position.

    A prediction shorter than its target gets the missing positions wrong; tokens beyond the
    target's length are not scored (:class:`Seq2SeqExactMatch` catches them).

    Example:
        >>> m = Seq2SeqTokenAccuracy()
        >>> m.update([torch.tensor([7, 8])], torch.tensor([[7, 9, 2]]))
        >>> m.compute()
        0.3333333333333333
    """

    def update(
        self,
        predictions: Sequence[torch.Tensor],
        target_ids: torch.Tensor,
        *,
        prompt_lengths: Sequence[int] | None = None,
    ) -> None:
        """Add generated ids (one tensor per row) and ``[batch, target]`` gold ids padded with
        ``IGNORE_INDEX``; ``prompt_lengths`` drops that many leading ids of each prediction."""
        for pred, target in _pairs(predictions, target_ids, prompt_lengths):
            n = min(len(pred), len(target))
            self.numerator += int((pred[:n] == target[:n]).sum())
            self.denominator += len(target)


class Seq2SeqExactMatch(_Ratio):
    """Fraction of rows whose generated sequence is exactly the target (same length too).

    Example:
        >>> m = Seq2SeqExactMatch()
        >>> targets = torch.tensor([[7, 2], [5, -100]])
        >>> m.update([torch.tensor([7, 2]), torch.tensor([5, 5])], targets)
        >>> m.compute()
        0.5
    """

    def update(
        self,
        predictions: Sequence[torch.Tensor],
        target_ids: torch.Tensor,
        *,
        prompt_lengths: Sequence[int] | None = None,
    ) -> None:
        """Same arguments as :meth:`Seq2SeqTokenAccuracy.update`."""
        for pred, target in _pairs(predictions, target_ids, prompt_lengths):
            self.numerator += int(torch.equal(pred, target))
            self.denominator += 1


def _pairs(
    predictions: Sequence[torch.Tensor],
    target_ids: torch.Tensor,
    prompt_lengths: Sequence[int] | None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each row's (prediction without its prompt, target without padding), on the CPU."""
    if len(predictions) != len(target_ids):
        raise ValueError(
            f"Got {len(predictions)} predictions for {len(target_ids)} targets; pass one "
            "prediction per target row."
        )
    pairs = []
    for i, (pred, target) in enumerate(zip(predictions, target_ids.cpu())):
        start = prompt_lengths[i] if prompt_lengths is not None else 0
        pairs.append((pred.cpu()[start:].long(), target[target != IGNORE_INDEX]))
    return pairs


class LmMetric(Protocol):
    """A metric the trainer updates with a batch and what the loss or predictor returned."""

    def update(self, batch: Mapping[str, Any], out: Mapping[str, Any]) -> None:
        """Add one batch: ``out`` is the loss dict (``lm``) or the predictions (``prediction``)."""
        ...

    def compute(self) -> float:
        """The value over everything added since the last reset (NaN when nothing was)."""
        ...

    def reset(self) -> None:
        """Forget everything added."""
        ...


class LossMetric(MeanLoss):
    """Mean loss per target token from loss dicts (``loss_sum`` and ``num_tokens``, else
    ``loss`` counted as one token).

    Example:
        >>> m = LossMetric()
        >>> m.update({}, {"loss": torch.tensor(1.5), "loss_sum": torch.tensor(3.0),
        ...               "num_tokens": torch.tensor(2)})
        >>> m.update({}, {"loss": torch.tensor(0.0), "loss_sum": torch.tensor(0.0),
        ...               "num_tokens": torch.tensor(2)})
        >>> m.compute()
        0.75
    """

    def update(self, batch: Mapping[str, Any], out: Mapping[str, Any]) -> None:  # type: ignore[override]
        count = int(out["num_tokens"]) if "num_tokens" in out else 1
        total = out["loss_sum"] if "loss_sum" in out else out["loss"] * count
        super().update(float(total), count)


class PerplexityMetric(LossMetric):
    """``exp`` of :class:`LossMetric` (a bound on perplexity where the loss is a bound, as
    MDLM's NELBO is); ``inf`` past float range."""

    def compute(self) -> float:
        loss = super().compute()
        return math.exp(loss) if loss < 700 else math.inf


class PredictionExactMatch(Seq2SeqExactMatch):
    """:class:`Seq2SeqExactMatch` of predictions (``ids``, and ``prompt_lengths`` when the ids
    include the prompt) against the batch's ``target_ids``."""

    def update(self, batch: Mapping[str, Any], out: Mapping[str, Any]) -> None:  # type: ignore[override]
        super().update(out["ids"], batch["target_ids"], prompt_lengths=out.get("prompt_lengths"))


class PredictionTokenAccuracy(Seq2SeqTokenAccuracy):
    """:class:`Seq2SeqTokenAccuracy` of predictions against the batch's ``target_ids``."""

    def update(self, batch: Mapping[str, Any], out: Mapping[str, Any]) -> None:  # type: ignore[override]
        super().update(out["ids"], batch["target_ids"], prompt_lengths=out.get("prompt_lengths"))


def loss_metrics() -> dict[str, LmMetric]:
    """Fresh ``loss`` and ``perplexity`` metrics of an ``lm`` loader."""
    return {"loss": LossMetric(), "perplexity": PerplexityMetric()}


def target_metrics() -> dict[str, LmMetric]:
    """Fresh ``exact_match`` and ``token_accuracy`` metrics of a ``prediction`` loader."""
    return {"exact_match": PredictionExactMatch(), "token_accuracy": PredictionTokenAccuracy()}
