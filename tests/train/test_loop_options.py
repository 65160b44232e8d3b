"""Loop options: precisions, gradient checkpointing, optimizer-in-backward, validation split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmhub.errors import ConfigError
from lmhub.train.run import build_trainer
from tests.train.helpers import metric_rows, tiny_config, write_text


def _losses(tmp_path: Path, name: str, **overrides: object) -> tuple[list[float], object]:
    config = tiny_config(
        tmp_path, write_text(tmp_path), output_dir=str(tmp_path / name), **overrides
    )
    trainer, _ = build_trainer(config)
    trainer.fit()
    return [r["loss"] for r in metric_rows(tmp_path / name)], trainer


def test_gradient_checkpointing_gives_the_same_losses(tmp_path: Path) -> None:
    plain, _ = _losses(tmp_path, "plain")
    checkpointed, _ = _losses(tmp_path, "gc", gradient_checkpointing=True)
    assert checkpointed == pytest.approx(plain, rel=1e-6)


def test_optimizer_in_backward_matches_the_plain_optimizer_without_clipping(
    tmp_path: Path,
) -> None:
    plain, _ = _losses(tmp_path, "plain", **{"optimizer.grad_clip": None})
    fused, _ = _losses(
        tmp_path, "fused", **{"optimizer.grad_clip": None, "optimizer.in_backward": True}
    )
    assert fused == pytest.approx(plain, rel=1e-5)
    rows = metric_rows(tmp_path / "fused")
    assert all(r["grad_norm"] is None for r in rows)  # stepped during backward: no global norm


def test_optimizer_in_backward_refuses_accumulation(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, write_text(tmp_path), grad_accum_steps=2,
                         **{"optimizer.in_backward": True})  # fmt: skip
    with pytest.raises(ConfigError, match=r"optimizer\.in_backward"):
        build_trainer(config)


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16"])
def test_bf16_precisions_train_close_to_fp32(tmp_path: Path, precision: str) -> None:
    fp32, _ = _losses(tmp_path, "fp32")
    low, trainer = _losses(tmp_path, precision, precision=precision)
    weights = {p.dtype for p in trainer.model.parameters()}  # type: ignore[attr-defined]
    assert weights == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert low == pytest.approx(fp32, rel=0.03)
    assert low[-1] < low[0]


def test_validation_split_logs_valid_rows(tmp_path: Path) -> None:
    _losses(tmp_path, "split", **{"data.valid_fraction": 0.3, "eval.every_steps": 2})
    valid = metric_rows(tmp_path / "split", split="valid")
    assert [r["step"] for r in valid] == [2, 4]
    assert all(r["loader"] == "lm" and r["valid/lm/perplexity"] > 1 for r in valid)
