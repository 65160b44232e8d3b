"""Gradient accumulation: k micro-batches of b rows equal one batch of k*b rows (fp32), because
the loss is normalised by the target tokens of all the micro-batches together."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmhub.train.run import build_trainer
from tests.train.helpers import metric_rows, tiny_config, write_pairs, write_text

# Pairs whose targets differ in length: averaging per-micro-batch means would weigh them wrongly.
UNEVEN = [("a=", "b"), ("bcd=", "dcbaxyzw"), ("ef=", "fe"), ("g=", "gggggggggggg")]


@pytest.mark.parametrize("kind", ["text", "seq2seq"])
def test_accumulated_micro_batches_equal_one_big_batch(tmp_path: Path, kind: str) -> None:
    data = write_pairs(tmp_path, UNEVEN) if kind == "seq2seq" else write_text(tmp_path)
    runs = {}
    for name, batch, accum in (("one", 4, 1), ("accum", 2, 2), ("micro", 1, 4)):
        config = tiny_config(
            tmp_path, data, batch_size=batch, grad_accum_steps=accum, max_steps=3,
            output_dir=str(tmp_path / name),
        )  # fmt: skip
        trainer, _ = build_trainer(config)
        trainer.fit()
        losses = [r["loss"] for r in metric_rows(tmp_path / name)]
        norms = [r["grad_norm"] for r in metric_rows(tmp_path / name)]
        runs[name] = (losses, norms, [p.detach().clone() for p in trainer.model.parameters()])
    base_losses, base_norms, base_params = runs["one"]
    for name in ("accum", "micro"):
        losses, norms, params = runs[name]
        assert losses == pytest.approx(base_losses, rel=1e-5, abs=1e-6)
        assert norms == pytest.approx(base_norms, rel=1e-4, abs=1e-6)
        for ours, theirs in zip(params, base_params):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # The accumulated runs saw the same tokens: not a vacuous comparison of empty batches.
    assert len(base_losses) == 3 and base_losses[0] > base_losses[-1]
