"""A NaN loss or gradient norm stops the run with an error naming the step, before any bad update,
and the checkpoints already written stay loadable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import NonFiniteLossError
from lmhub.train.resume import find_resume_checkpoint
from lmhub.train.run import build_trainer
from tests.train.helpers import metric_rows, tiny_config, write_text


def _poison_at(model: torch.nn.Module, call: int) -> None:
    calls = {"n": 0}

    def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return output * float("nan") if calls["n"] == call else output

    model.register_forward_hook(hook)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, write_text(tmp_path), max_steps=8,
                         **{"checkpoint.every_steps": 2})  # fmt: skip
    trainer, _ = build_trainer(config)
    _poison_at(trainer.model, call=5)  # one forward per step: step 5
    with pytest.raises(NonFiniteLossError, match="step 5") as info:
        trainer.fit()
    assert info.value.step == 5 and info.value.quantity == "loss"
    assert [r["step"] for r in metric_rows(tmp_path / "run")] == [1, 2, 3, 4]
    last = find_resume_checkpoint(tmp_path / "run")
    assert last is not None and last.name == "step_4"
    saved = lmhub.load_model(last)
    assert all(torch.isfinite(p).all() for p in saved.parameters())
    # No bad update was made: the model in memory is still the step-4 model.
    for ours, theirs in zip(trainer.model.state_dict().values(), saved.state_dict().values()):
        assert torch.equal(ours, theirs)


def test_nan_gradient_norm_stops_too(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, write_text(tmp_path), max_steps=3)
    trainer, _ = build_trainer(config)
    weight = next(p for p in trainer.model.parameters() if p.dim() == 2)
    calls = {"n": 0}

    def poison(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 2 else grad

    weight.register_hook(poison)
    with pytest.raises(NonFiniteLossError, match="gradient norm at step 2"):
        trainer.fit()
