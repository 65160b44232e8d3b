"""`lmhub.lm.metrics` on hand-built tensors, with exact expected values."""

from __future__ import annotations

import math

import pytest
import torch

from lmhub.lm.metrics import (
    ExactMatch,
    MeanLoss,
    Perplexity,
    Seq2SeqExactMatch,
    Seq2SeqTokenAccuracy,
    TokenAccuracy,
    loss_metrics,
    target_metrics,
)

X = -100  # ignored label


def test_mean_loss_weights_batches_by_tokens_and_resets() -> None:
    m = MeanLoss()
    assert math.isnan(m.compute())
    m.update(torch.tensor(3.0), torch.tensor(1))
    m.update(5.0, 4)
    assert m.compute() == 8.0 / 5  # not (3 + 1.25) / 2
    m.reset()
    m.update(2.0, 2)
    assert m.compute() == 1.0


def test_perplexity_is_exp_of_the_mean_loss() -> None:
    m = Perplexity()
    m.update(math.log(4.0) * 3, 3)
    assert m.compute() == pytest.approx(4.0, rel=1e-12)
    m.update(0.0, 3)
    assert m.compute() == pytest.approx(2.0, rel=1e-12)  # exp(log(4) / 2)


def test_token_accuracy_skips_ignored_labels() -> None:
    m = TokenAccuracy()
    predictions = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    labels = torch.tensor([[X, 2, 0, 4], [X, X, 7, X]])
    m.update(predictions, labels)
    assert m.compute() == 3 / 4
    m.update(torch.tensor([[9]]), torch.tensor([[0]]))
    assert m.compute() == 3 / 5


def test_exact_match_needs_every_scored_position_and_skips_rows_without_targets() -> None:
    m = ExactMatch()
    predictions = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 2, 3], [0, 0, 0]])
    labels = torch.tensor([[X, 2, 3], [X, 2, 4], [1, 2, 3], [X, X, X]])
    m.update(predictions, labels)
    assert m.compute() == 2 / 3


def test_seq2seq_token_accuracy_scores_the_target_positions() -> None:
    m = Seq2SeqTokenAccuracy()
    targets = torch.tensor([[4, 5, 6], [7, X, X], [8, 9, X]])
    predictions = [
        torch.tensor([4, 0, 6, 1, 1]),  # 2 of 3; extra tokens are not scored here
        torch.tensor([7]),  # 1 of 1
        torch.tensor([8]),  # 1 of 2: too short
    ]
    m.update(predictions, targets)
    assert m.compute() == 4 / 6


def test_seq2seq_exact_match_needs_the_same_length() -> None:
    m = Seq2SeqExactMatch()
    targets = torch.tensor([[4, 5], [7, X], [8, 9]])
    m.update([torch.tensor([4, 5]), torch.tensor([7, 7]), torch.tensor([8])], targets)
    assert m.compute() == 1 / 3


def test_seq2seq_metrics_drop_the_prompt_of_full_sequence_predictions() -> None:
    targets = torch.tensor([[4, 5], [6, X]])
    full = [torch.tensor([1, 2, 4, 5]), torch.tensor([3, 4])]  # prompts [1, 2] and [3]
    em, acc = Seq2SeqExactMatch(), Seq2SeqTokenAccuracy()
    em.update(full, targets, prompt_lengths=[2, 1])
    acc.update(full, targets, prompt_lengths=[2, 1])
    assert em.compute() == 1 / 2
    assert acc.compute() == 2 / 3
    # Without dropping the prompt, the prompt tokens would be scored against the target.
    acc.reset()
    acc.update(full, targets)
    assert acc.compute() == 0.0


def test_seq2seq_metrics_refuse_mismatched_rows() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        Seq2SeqExactMatch().update([torch.tensor([1]), torch.tensor([2])], torch.tensor([[1]]))


def test_metric_objects_update_from_loss_dicts_and_predictions() -> None:
    lm = loss_metrics()
    lm["loss"].update({}, {"loss": torch.tensor(2.0), "loss_sum": torch.tensor(6.0),
                           "num_tokens": torch.tensor(3)})  # fmt: skip
    lm["loss"].update({}, {"loss": torch.tensor(0.0)})  # no sum: one token of loss 0
    assert lm["loss"].compute() == 6.0 / 4
    lm["perplexity"].update({}, {"loss_sum": torch.tensor(math.log(9.0) * 2),
                                 "num_tokens": torch.tensor(2), "loss": None})  # fmt: skip
    assert lm["perplexity"].compute() == pytest.approx(9.0)

    pred = target_metrics()
    batch = {"target_ids": torch.tensor([[7, 2], [5, X]])}
    out = {"ids": [torch.tensor([9, 7, 2]), torch.tensor([8, 5, 1])], "prompt_lengths": [1, 1]}
    for metric in pred.values():
        metric.update(batch, out)
    assert pred["exact_match"].compute() == 0.5  # row 2 has an extra token
    assert pred["token_accuracy"].compute() == 1.0  # every target token is right
    for metric in pred.values():
        metric.reset()
        assert math.isnan(metric.compute())
