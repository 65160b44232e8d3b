"""The CLI prints a state-dict mismatch in one line, and in full with LMHUB_FULL_ERRORS=1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmhub.cli.main import main, one_line
from lmhub.errors import ModelCheckpointError, StateDictMismatchError
from tests.oracle.hf_models import save_tiny_hf_llama


def _mismatched_checkpoint(directory: Path) -> Path:
    # Weights of a 2-layer model under a config that says 4 layers and another FFN width.
    save_tiny_hf_llama(directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(num_hidden_layers=4, intermediate_size=128)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _construct(capsys: pytest.CaptureFixture[str], checkpoint: Path, out: Path) -> str:
    capsys.readouterr()  # drop what building the checkpoint printed
    argv = ["model", "construct", str(checkpoint), "-o", str(out), "--device", "cpu"]
    code = main([*argv, "--save-checkpoint"])
    assert code == 2
    return capsys.readouterr().err


def test_a_mismatch_prints_one_line_with_counts_and_first_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LMHUB_FULL_ERRORS", raising=False)
    checkpoint = _mismatched_checkpoint(tmp_path / "hf")
    err = _construct(capsys, checkpoint, tmp_path / "out")
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "18 missing (layers.2." in err and "6 mis-shaped (model.layers.0.mlp" in err
    assert ", ..." in err and "LMHUB_FULL_ERRORS=1" in err

    monkeypatch.setenv("LMHUB_FULL_ERRORS", "1")
    full = _construct(capsys, checkpoint, tmp_path / "out")
    assert full.count("\n") > 5 and "layers.3.ffn.down_proj.weight" in full
    assert "LMHUB_FULL_ERRORS" not in full


def test_one_line_for_any_multi_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMHUB_FULL_ERRORS", raising=False)
    error = ModelCheckpointError("First line [/] says it.\nSecond line has details.")
    assert one_line(error) == "First line [/] says it. Set LMHUB_FULL_ERRORS=1 for the full list."
    mismatch = StateDictMismatchError(missing=["a", "b"], unexpected=[], path="ckpt")
    assert (
        one_line(mismatch)
        == str(mismatch).splitlines()[0].replace("2 missing", "2 missing (a, b)")
        + " Set LMHUB_FULL_ERRORS=1 for the full list."
    )
    assert one_line(ModelCheckpointError("One line.")) == "One line."
