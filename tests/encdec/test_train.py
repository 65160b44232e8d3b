"""`lmhub train` with ``lm_type: seq2seq`` end to end: the shipped example config on
synthetic reversal data, through the CLI: validation rows carry exact match and token accuracy,
predictions are written, and the final directory loads back as the same encoder-decoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.cli.main import main
from lmhub.data.synth import write_synth_jsonl


@pytest.mark.parametrize("model", ["t5_tiny", "transformer_tiny"])
def test_seq2seq_example_trains_through_the_cli(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    train = write_synth_jsonl(tmp_path / "train.jsonl", "reverse", 256, digits=4)
    valid = write_synth_jsonl(tmp_path / "valid.jsonl", "reverse", 16, digits=4, seed=1)
    out = tmp_path / "run"
    code = main(
        [
            "train", "seq2seq_reverse", f"model={model}", f"data.train={train}",
            f"data.valid={valid}", f"output_dir={out}", "max_steps=6", "eval.every_steps=6",
            "checkpoint.every_steps=0", "checkpoint.register_cards=false", "log.progress=none",
            "model_config.model_dim=32", "model_config.ffn_inner_dim=64",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    train_rows = [r for r in rows if r.get("split") != "valid"]
    assert train_rows and all(r["loss"] > 0 for r in train_rows)
    prediction = next(r for r in rows if r.get("loader") == "prediction")
    exact, accuracy = (
        prediction["valid/prediction/exact_match"],
        prediction["valid/prediction/token_accuracy"],
    )
    assert 0.0 <= exact <= 1.0 and 0.0 <= accuracy <= 1.0
    records = (out / prediction["predictions"]).read_text().splitlines()
    assert len(records) == 16 and set(json.loads(records[0])) >= {"prompt", "target"}
    loaded = lmhub.load_model(out / "final", progress=False)
    assert lmhub.get_family(model.removesuffix("_tiny")).model_class is type(loaded)
    assert loaded.config.model_dim == 32
