"""LM types through the one trainer: MLM and ARLM overfit one batch to exact match 1.0, MLM trains
on two families, named evaluation loaders per split, the debug modes, the LM type recorded in
checkpoints for ``lmhub eval`` and ``lmhub generate``, exact resume of MLM, and bad ``lm_type``
values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmhub.cli.main import main
from lmhub.config import to_yaml
from lmhub.errors import ConfigError, LmTypeError
from lmhub.lm.registry import get_lm_type
from lmhub.train.config import TrainConfig
from lmhub.train.config_files import load_train_config
from lmhub.train.lm_state import LM_TYPE_FILE, load_lm_run
from lmhub.train.run import evaluate_checkpoint, train
from tests.train.helpers import PAIRS, metric_rows, tiny_config, write_pairs, write_text

# Pure [MASK] corruption: what the predictor sees, so one batch is learnt fastest.
MLM_OVERFIT = {"mask_token_ratio": 1.0, "random_token_ratio": 0.0}


def _overfit(tmp_path: Path, lm_type: str, steps: int, **overrides: Any) -> TrainConfig:
    return tiny_config(
        tmp_path, write_pairs(tmp_path), lm_type=lm_type, debug="overfit",
        overfit_batch_size=len(PAIRS), max_steps=steps,
        **{"optimizer.lr": 1e-2, "optimizer.weight_decay": 0.0, "eval.max_new_tokens": 8,
           "log.every_steps": 50, "eval.every_steps": 0, **overrides},
    )  # fmt: skip


def _final(output: Path, loader: str, split: str = "valid") -> dict[str, Any]:
    rows = [r for r in metric_rows(output, split=split) if r["loader"] == loader]
    return rows[-1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lm_type", "steps", "options"), [("mlm", 250, MLM_OVERFIT), ("arlm", 100, {})]
)
def test_overfit_mode_reaches_exact_match_one(
    tmp_path: Path, lm_type: str, steps: int, options: dict[str, Any]
) -> None:
    config = _overfit(tmp_path, lm_type, steps, lm_options=options)
    train(config)
    output = Path(config.output_dir)
    pred = _final(output, "prediction")
    assert pred["step"] == steps and pred["valid/prediction/exact_match"] == 1.0
    assert pred["valid/prediction/token_accuracy"] == 1.0
    assert pred["predictions"] == f"predictions/valid/prediction/step_{steps}.jsonl"
    records = [json.loads(line) for line in (output / pred["predictions"]).open()]
    assert sorted((r["prompt"], r["prediction"]) for r in records) == sorted(PAIRS)
    assert _final(output, "lm")["valid/lm/loss"] < 0.5


@pytest.mark.parametrize("family", ["llama", "deepone"])
def test_mlm_trains_on_two_families_through_the_same_trainer(tmp_path: Path, family: str) -> None:
    model = {"llama": "llama_tiny", "deepone": "deepone_tiny"}[family]
    config = _overfit(tmp_path, "mlm", 40, model=model, lm_options=MLM_OVERFIT,
                      **{"eval.every_steps": 20, "lr_schedule.kind": "constant"})  # fmt: skip
    train(config)
    losses = [r["valid/lm/loss"] for r in metric_rows(Path(config.output_dir), "valid")
              if r["loader"] == "lm"]  # fmt: skip
    assert len(losses) == 2 and losses[1] < losses[0] - 0.3, losses
    run = load_lm_run(str(Path(config.output_dir) / "final"))
    assert run.source.family.name == family and run.lm_type.name == "mlm"
    assert run.model.config.vocab_size == 260  # the byte vocabulary and [MASK]


def test_named_loaders_per_split_log_prefixed_metrics_and_write_predictions(
    tmp_path: Path,
) -> None:
    data = write_pairs(tmp_path)
    (tmp_path / "other").mkdir()
    other = write_pairs(tmp_path / "other", PAIRS[:2])
    loaders = [
        {"name": "lm", "kind": "lm", "split": "valid"},
        {"name": "short", "kind": "prediction", "split": "valid", "data": str(other)},
        {"name": "answers", "kind": "prediction", "split": "test"},
    ]
    config = tiny_config(
        tmp_path, data, lm_type="mlm", max_steps=4,
        **{"data.valid": str(data), "data.test": str(data), "eval.every_steps": 2,
           "eval.loaders": loaders, "eval.max_new_tokens": 4},
    )  # fmt: skip
    train(config)
    output = Path(config.output_dir)
    valid = metric_rows(output, "valid")
    assert [(r["step"], r["loader"]) for r in valid] == [
        (2, "lm"), (2, "short"), (4, "lm"), (4, "short")
    ]  # fmt: skip
    assert {"valid/lm/loss", "valid/lm/perplexity"} <= set(valid[0])
    assert {"valid/short/exact_match", "valid/short/token_accuracy"} <= set(valid[1])
    test = metric_rows(output, "test")  # at the end only
    assert [(r["step"], r["loader"]) for r in test] == [(4, "answers")]
    assert "test/answers/exact_match" in test[0]
    short = (output / "predictions/valid/short/step_4.jsonl").read_text().splitlines()
    assert len(short) == 2
    answers = (output / "predictions/test/answers/step_4.jsonl").read_text().splitlines()
    assert [json.loads(line)["prompt"] for line in answers] == [p for p, _ in PAIRS]


def test_smoke_mode_runs_a_few_steps_with_one_batch_per_loader(tmp_path: Path) -> None:
    smoke = {"data.valid_fraction": 0.5, "eval.batch_size": 1}
    config = tiny_config(tmp_path, write_pairs(tmp_path), lm_type="mlm", debug="smoke",
                         max_steps=100, **smoke)  # fmt: skip
    train(config)
    output = Path(config.output_dir)
    assert [r["step"] for r in metric_rows(output)] == [1, 2, 3]
    pred = _final(output, "prediction")
    lines = (output / pred["predictions"]).read_text().splitlines()
    assert pred["step"] == 3 and len(lines) == 1  # eval.max_batches=1, batches of 1
    assert "max_steps: 3" in (output / "config.yaml").read_text()


@pytest.mark.slow
def test_the_run_records_its_type_for_eval_and_generate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _overfit(tmp_path, "mlm", 250, lm_options={**MLM_OVERFIT, "predict_steps": 4},
                      run_name="mlmrev", **{"checkpoint.every_steps": 250})  # fmt: skip
    train(config)
    output = Path(config.output_dir)
    for directory in (output / "checkpoints" / "step_250", output / "final"):
        record = json.loads((directory / LM_TYPE_FILE).read_text())
        assert record == {"lm_type": "mlm", "lm_options": config.lm_options,
                          "special_ids": {"mask": 259}, "step": 250,
                          "data": {"add_bos": False, "add_eos": True}}  # fmt: skip

    # `lmhub eval` on the run's card reproduces the run's last validation rows.
    rows = evaluate_checkpoint(config, "mlmrev@last")
    trained = [r for r in metric_rows(output, "valid") if r["step"] == 250]
    assert rows == trained
    config_file = tmp_path / "run.yaml"
    config_file.write_text(to_yaml(config))
    capsys.readouterr()
    assert main(["eval", str(config_file), "checkpoint=mlmrev@last"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == trained

    # `lmhub generate` fills the answer with the MLM predictor (max_new_tokens slots).
    prompt, answer = PAIRS[2]
    assert main(["generate", "mlmrev@last", "--prompt", prompt, "--max-new-tokens",
                 str(len(answer) + 1)]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == answer


def test_mlm_resumes_exactly(tmp_path: Path) -> None:
    data = write_text(tmp_path)
    common = {"lm_type": "mlm", "lr_schedule.kind": "constant", "checkpoint.every_steps": 3}
    full = tiny_config(tmp_path, data, max_steps=6, output_dir=str(tmp_path / "full"), **common)
    train(full)
    part = tiny_config(tmp_path, data, max_steps=3, output_dir=str(tmp_path / "part"), **common)
    train(part)
    resumed = tiny_config(tmp_path, data, max_steps=6, output_dir=str(tmp_path / "part"), **common)
    train(resumed)
    losses = [[r["loss"] for r in metric_rows(Path(c.output_dir))] for c in (full, resumed)]
    assert len(losses[0]) == 6 and losses[0] == losses[1]


def test_unknown_lm_type_is_one_line_with_close_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_pairs(tmp_path)
    assert main(["train", "arlm_tiny", f"data.train={data}", "lm_type=mlmm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Did you mean 'mlm'" in err
    with pytest.raises(LmTypeError, match="defines no LM_TYPE"):
        train(tiny_config(tmp_path, data, lm_type="lmhub.lm.metrics"))
    with pytest.raises(ConfigError, match=r"lm_options .*mask_prb"):
        train(tiny_config(tmp_path, data, lm_type="mlm", lm_options={"mask_prb": 0.2}))


def test_the_shipped_mlm_example_is_a_valid_mlm_config() -> None:
    config = load_train_config("mlm_reverse", ["data.train=x.jsonl"])
    assert config.lm_type == "mlm" and config.lm_options["predict_steps"] == 9
    assert get_lm_type("mlm").make_options(config.lm_options).mask_token_ratio == 1.0
