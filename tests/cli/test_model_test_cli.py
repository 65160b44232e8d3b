"""`lmhub model test`: prints loss per step, shapes, parameters, speed, memory; NaN exits 2.

Uses tests/fixtures/tinyshakespeare.txt as real training text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import torch

from lmhub.cli.main import main
from tests.fixtures import SHAKESPEARE


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_model_test_on_random_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "model", "test", "llama_tiny", "--steps", "3", "--sequence-length", "16"
    )
    assert code == 0, err
    losses = [float(x) for x in re.findall(r"step \d/3: loss ([0-9.]+)", out)]
    assert len(losses) == 3 and all(4.0 < x < 7.0 for x in losses)
    assert "logits shape: (2, 16, 259)" in out
    assert re.search(r"parameters: [0-9,]+", out)
    assert re.search(r"throughput: [0-9,]+ tokens/s", out)
    assert re.search(r"peak memory: [0-9,.]+ MiB", out)
    assert out.rstrip().endswith("Test Completed")


def test_model_test_with_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "model", "test", "single_head_tiny",
        "--batch-size", "3", "--sequence-length", "12", "--steps", "2", "--lr", "1e-3",
        "--optimizer", "sgd", "--dtype", "bfloat16", "--device", "cpu",
        "--gradient-checkpointing", "--fuse-optim-with-backward",
        "--data", str(SHAKESPEARE), "--tokenizer", "byte",
    )  # fmt: skip
    assert code == 0, err
    assert "bfloat16 on cpu" in out and "ByteTokenizer" in out
    assert "gradient checkpointing over" in out and "optimizer fused with backward" in out
    assert "logits shape: (3, 12, 259)" in out and "Test Completed" in out


def test_non_finite_loss_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "model", "test", "llama_tiny", "--sequence-length", "16", "--steps", "4",
        "--optimizer", "sgd", "--lr", "1e30",
    )  # fmt: skip
    assert code == 2
    assert "step 2 is nan" in err and "Lower the learning rate" in err
    assert "Test Completed" not in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["llama_tin"], "llama_tiny"),
        (["llama_tiny", "--steps", "0"], "'steps' must be positive"),
        (["llama_tiny", "--data", "/nonexistent.txt"], "does not exist"),
        (["llama_tiny", "--dtype", "float8"], "not a known dtype"),
        (["llama_tiny", "--device", "meta"], "holds no data"),
    ],
)
def test_user_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, _, err = run(capsys, "model", "test", *argv)
    assert code == 2 and needle in err
