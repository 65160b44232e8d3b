"""``lmhub train``: an ARLM overfit of one batch to exact match 1.0 through the command, the run's
card usable by ``lmhub generate``, and one-line errors with exit code 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lmhub.cli.main import main
from lmhub.config import from_yaml
from lmhub.train.config import TrainConfig
from tests.train.helpers import PAIRS, TINY_MODEL, metric_rows, write_pairs


def _args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    model = ",".join(f"{k}: {v}" for k, v in TINY_MODEL.items())
    return [
        "train", "arlm_tiny", f"data.train={data}", f"data.valid={data}", "data.valid_fraction=0",
        f"data.cache_dir={tmp_path / 'tok'}", f"model_config={{{model}}}", "batch_size=4",
        "seq_len=32", "optimizer.lr=1e-2", "optimizer.weight_decay=0", "lr_schedule.kind=constant",
        "lr_schedule.warmup_steps=0", "eval.max_new_tokens=8", "log.progress=plain",
        f"output_dir={tmp_path / 'rev'}", *extra,
    ]  # fmt: skip


def test_overfit_one_batch_to_exact_match_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_pairs(tmp_path)
    args = _args(tmp_path, data, "max_steps=80", "eval.every_steps=40",
                 "checkpoint.every_steps=40", "log.every_steps=20")  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "max_steps: 80" in out  # the resolved config is printed...
    saved = from_yaml(TrainConfig, (tmp_path / "rev" / "config.yaml").read_text())
    assert saved.max_steps == 80 and saved.model_config["model_dim"] == 32  # ...and saved

    valid = metric_rows(tmp_path / "rev", split="valid")
    final = [r for r in valid if r["step"] == 80]
    lm = next(r for r in final if r["loader"] == "lm")
    pred = next(r for r in final if r["loader"] == "prediction")
    assert pred["valid/prediction/exact_match"] == 1.0
    assert pred["valid/prediction/token_accuracy"] == 1.0
    loss = lm["valid/lm/loss"]
    assert loss < 0.05 and lm["valid/lm/perplexity"] == pytest.approx(2.718281828**loss)
    assert pred["predictions"] == "predictions/valid/prediction/step_80.jsonl"
    train_rows = metric_rows(tmp_path / "rev")
    assert [r["step"] for r in train_rows] == [20, 40, 60, 80]
    for row in train_rows:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen"} <= set(row)
    records = [json.loads(line) for line in (tmp_path / "rev" / pred["predictions"]).open()]
    assert [(r["prompt"], r["prediction"]) for r in records] == PAIRS

    # The run's card: `lmhub generate rev@last` continues a prompt with the trained model.
    assert main(["generate", "rev@last", "--prompt", "xyz=", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out.strip() == "zyx"
    assert main(["generate", "rev@step_40", "--prompt", "ab=", "--max-new-tokens", "2"]) == 0


def test_list_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--list-examples"]) == 0
    assert "arlm_tiny" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimzer.lr=1", "Did you mean 'optimizer'"),
        ("max_steps=abc", "'max_steps'"),
        ("lr_schedule.kind=cosin", "'cosine', 'linear', 'constant'"),
        ("precision=fp16", "'bf16-mixed'"),
        ("batch_size=0", "'batch_size' is 0"),
    ],
)
def test_bad_override_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    assert main(["train", "arlm_tiny", override]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing trained, no config printed
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_unknown_config_names_the_close_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "arlm_tny"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Did you mean 'arlm_tiny'" in err


def test_tensorboard_without_the_package_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # absent whether or not this machine has it
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else
        find_spec(name, *a),
    )  # fmt: skip
    args = _args(tmp_path, write_pairs(tmp_path), "max_steps=1", "log.tensorboard=true")
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'lmhub[tensorboard]'" in err
