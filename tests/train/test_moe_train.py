"""Training a mixture of experts: the router's load-balancing loss joins the objective and is
logged apart from the language-model loss, with how evenly the experts are loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmhub.lm.arlm.loss import ARLMLoss
from lmhub.models.mixtral import mixtral_archs
from lmhub.models.mixtral.model import MixtralModel
from lmhub.nn.moe import load_balancing_loss
from lmhub.train.model_test import ModelTestOptions, run_model_test
from lmhub.train.run import train
from tests.train.helpers import metric_rows, tiny_config, write_text

TINY_MOE = {
    "model_dim": 32,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "ffn_inner_dim": 48,
    "moe": {"num_experts": 4, "top_k": 2, "expert_inner_dim": 48, "aux_loss_coef": 0.5},
}


def test_arlm_loss_returns_the_weighted_aux_loss_of_its_forward() -> None:
    config = mixtral_archs.get("mixtral_tiny")
    torch.manual_seed(0)
    model = MixtralModel(config).train()
    ids = torch.randint(0, 259, (2, 12))
    out = ARLMLoss(model).loss_fn({"input_ids": ids, "labels": ids, "attention_mask": None})
    stats = [layer.ffn.stats for layer in model.layers]
    assert all(s is not None and s.num_tokens == 24 for s in stats)
    want = config.moe.aux_loss_coef * load_balancing_loss(stats)  # type: ignore[union-attr]
    torch.testing.assert_close(out["aux_loss"], want)
    out["aux_loss"].backward()
    assert model.layers[0].ffn.router.weight.grad.abs().sum() > 0  # type: ignore[union-attr]

    model.eval()
    with torch.no_grad():
        out = ARLMLoss(model).loss_fn({"input_ids": ids, "labels": ids, "attention_mask": None})
    assert "aux_loss" not in out  # evaluation: no stale statistics of the training forward
    assert model.router_load() is None


@pytest.mark.slow
def test_trainer_adds_and_logs_the_aux_loss(tmp_path: Path) -> None:
    data = write_text(tmp_path)
    runs = {}
    for coef in (0.0, 0.5):
        model_config = {**TINY_MOE, "moe": {**TINY_MOE["moe"], "aux_loss_coef": coef}}
        config = tiny_config(
            tmp_path / str(coef), data, model="mixtral_tiny", model_config=model_config, max_steps=2
        )
        train(config)
        runs[coef] = metric_rows(tmp_path / str(coef) / "run")
    with_aux, without = runs[0.5], runs[0.0]
    assert all(r["aux_loss"] > 0 for r in with_aux)
    assert all("aux_loss" not in r for r in without)
    # Top-2 of 4 experts: the busiest expert gets at most twice the mean share.
    assert all(1.0 <= r["expert_load_max"] <= 2.0 for r in with_aux + without)
    # Same data and init: the first step's LM loss agrees; the objective's gradient does not.
    assert with_aux[0]["loss"] == pytest.approx(without[0]["loss"], abs=1e-6)
    assert with_aux[1]["loss"] != pytest.approx(without[1]["loss"], abs=1e-7)


def test_model_test_reports_the_aux_loss() -> None:
    result = run_model_test(
        "qwen3_moe_tiny", ModelTestOptions(steps=2, sequence_length=16), echo=lambda _: None
    )
    assert len(result.aux_losses) == 2 and all(a > 0 for a in result.aux_losses)
