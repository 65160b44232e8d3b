"""``lm_type: mlm`` trains the encoder families (BERT, ModernBERT) through the one trainer, and
the result loads back as the same encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

import lmhub
from lmhub.data.synth import write_synth_jsonl
from lmhub.train.config_files import load_train_config
from lmhub.train.run import train
from tests.train.helpers import metric_rows


def _run(tmp_path: Path, model: str) -> dict[str, float]:
    data = write_synth_jsonl(tmp_path / "reverse.jsonl", "reverse", 2000, digits=4, seed=0)
    config = load_train_config(
        "mlm_reverse",
        [
            f"data.train={data}", f"model={model}", "model_config={}", "max_steps=60",
            "batch_size=64", f"output_dir={tmp_path / 'out'}", "eval.every_steps=60",
            "checkpoint.every_steps=0", "checkpoint.register_cards=false", "log.progress=none",
            "log.every_steps=20",
        ],
    )  # fmt: skip
    final = train(config)
    loaded = lmhub.load_model(final, progress=False)
    assert lmhub.get_family(model.removesuffix("_tiny")).model_class is type(loaded)
    rows = [r for r in metric_rows(tmp_path / "out", split="valid") if r["loader"] == "prediction"]
    return rows[-1]


def test_bert_learns_reversal_as_a_masked_lm(tmp_path: Path) -> None:
    # Learned absolute positions: 60 steps suffice for 4-digit reversal.
    assert _run(tmp_path, "bert_tiny")["valid/prediction/exact_match"] >= 0.95


@pytest.mark.parametrize("model", ["modernbert_tiny"])
def test_rope_encoders_train_as_masked_lms(tmp_path: Path, model: str) -> None:
    # RoPE alone has no absolute anchor, so reversal is learnt more slowly; it still learns.
    assert _run(tmp_path, model)["valid/prediction/token_accuracy"] > 0.4
