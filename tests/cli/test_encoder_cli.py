"""`lmhub model construct` and `lmhub model test` on the encoder families: an HF directory
transformers reads, and a masked-token objective (an encoder sees the next token, so predicting
it would test nothing).

Uses tests/fixtures/tinyshakespeare.txt as real training text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lmhub.cli.main import main
from lmhub.train.model_test import ModelTestOptions, masked_tokens, run_model_test
from tests.fixtures import SHAKESPEARE


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("arch", "model_type"), [("bert_tiny", "bert"), ("modernbert_tiny", "modernbert")]
)
def test_model_construct_writes_a_directory_transformers_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arch: str, model_type: str
) -> None:
    transformers = pytest.importorskip("transformers")
    code = main(["model", "construct", arch, "-o", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 0, err
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == model_type
    theirs = transformers.AutoConfig.from_pretrained(tmp_path)
    with torch.device("meta"):
        model = transformers.AutoModelForMaskedLM.from_config(theirs)
    assert type(model).__name__.endswith("ForMaskedLM")


@pytest.mark.parametrize("arch", ["bert_tiny", "modernbert_tiny"])
def test_model_test_trains_an_encoder_on_masked_tokens(
    capsys: pytest.CaptureFixture[str], arch: str
) -> None:
    argv = ["model", "test", arch, "--steps", "2", "--sequence-length", "16"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    words = " ".join(out.split())  # the console wraps long lines
    assert "masked tokens (15% replaced by random ids, predicted)" in words
    losses = [float(x) for x in re.findall(r"step \d/2: loss ([0-9.]+)", out)]
    assert len(losses) == 2 and all(4.0 < x < 7.0 for x in losses)
    assert "logits shape: (2, 16, 259)" in out and out.rstrip().endswith("Test Completed")


def test_the_masked_loss_falls_on_real_text() -> None:
    options = ModelTestOptions(
        steps=8, sequence_length=32, batch_size=4, lr=3e-3, data=SHAKESPEARE, tokenizer="byte"
    )
    result = run_model_test("bert_tiny", options, echo=lambda _: None)
    assert sum(result.losses[-2:]) < sum(result.losses[:2]) - 0.5


def test_masked_tokens_corrupts_and_predicts_only_the_picked_positions() -> None:
    ids = torch.arange(4000).view(4, 1000) % 250
    inputs, targets = masked_tokens(ids, 259, torch.Generator().manual_seed(0))
    picked = targets != -100
    assert torch.equal(targets[picked], ids[picked])
    assert torch.equal(inputs[~picked], ids[~picked])
    assert picked.float().mean().item() == pytest.approx(0.15, abs=0.02)
    one = torch.zeros(3, 2, dtype=torch.long)  # so short that a row could pick nothing
    _, targets = masked_tokens(one, 259, torch.Generator().manual_seed(0))
    assert ((targets != -100).sum(dim=1) >= 1).all()
