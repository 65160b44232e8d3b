"""`lmhub model construct` and `lmhub model test` on the encoder-decoder families, and
`lmhub generate`-free loading of what construct writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("arch", "kind", "model_type"),
    [
        ("t5_tiny", "native Hugging Face", "t5"),
        ("transformer_tiny", "remote-code", "lmhub_transformer"),
    ],
)
def test_model_construct_writes_a_loadable_directory(
    arch: str, kind: str, model_type: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / arch
    code, out, err = run(
        capsys, "model", "construct", arch, "-o", str(out_dir), "--device", "cpu",
        "--save-checkpoint", "--set", "num_layers=2", "--set", "num_decoder_layers=2",
    )  # fmt: skip
    assert code == 0, err
    assert f"Wrote a {kind} directory" in out
    assert json.loads((out_dir / "config.json").read_text())["model_type"] == model_type
    model = lmhub.load_model(out_dir, progress=False).eval()
    assert model.config.num_layers == 2
    with torch.no_grad():
        logits = model(torch.tensor([[5, 6, 7]]), decoder_input_ids=torch.tensor([[3, 4]]))
    assert logits.shape == (1, 2, 259)


@pytest.mark.parametrize("arch", ["t5_tiny", "transformer_tiny"])
def test_model_test_trains_an_encoder_decoder(
    arch: str, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    code, out, err = run(capsys, "model", "test", arch, "--steps", "3", "--sequence-length", "16")
    assert code == 0, err
    losses = [float(x) for x in re.findall(r"step \d/3: loss ([0-9.]+)", out)]
    assert len(losses) == 3 and all(4.0 < x < 8.0 for x in losses)  # about ln(259) = 5.6
    assert "logits shape: (2, 16, 259)" in out
