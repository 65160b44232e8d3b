"""Bad command-line input to generate, demo and model construct: one line, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lmhub.cli.main import main
from lmhub.errors import ConfigError
from lmhub.utils import as_device, check_seed


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    return code, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for word in words:
        assert word in lines[0]


# An index no machine has, so the test means the same with or without a GPU.
MISSING = "cuda:99"


def test_as_device_refuses_a_device_this_machine_lacks() -> None:
    with pytest.raises(ConfigError, match="not available on this machine") as info:
        as_device(MISSING)
    assert info.value.field == "device"
    assert as_device("meta").type == "meta" and as_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a valid device"):
        as_device("cdua")


@pytest.mark.parametrize("seed", [-1, 2**64, 10**24, True])
def test_check_seed_bounds(seed: int) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        check_seed(seed)
    assert check_seed(2**64 - 1) == 2**64 - 1


def test_generate_on_a_missing_device(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "generate", "llama_tiny", "-p", "hi", "--device", MISSING)
    assert_one_line_error(code, err, MISSING, "not available")


def test_generate_with_a_25_digit_seed(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "generate", "llama_tiny", "-p", "hi", "--seed", "1" * 25)
    assert_one_line_error(code, err, "seed", "out of range")


def test_generate_with_bad_sampling_settings(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "generate", "llama_tiny", "-p", "hi", "--top-p", "1.5")
    assert_one_line_error(code, err, "top_p")


def test_demo_with_an_empty_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "demo", "--prompt", "")
    assert_one_line_error(code, err, "prompt is empty")


def test_construct_on_a_missing_device(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(
        capsys, "model", "construct", "llama_tiny", "-o", tmp_path / "o", "--device", MISSING
    )
    assert_one_line_error(code, err, MISSING)
    assert not (tmp_path / "o").exists()


def test_construct_with_a_bad_shard_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["model", "construct", "llama_tiny", "-o", tmp_path / "o", "--max-shard-size", "abc"]
    code, err = run(capsys, *argv, "--device", "cpu", "--save-checkpoint")
    assert_one_line_error(code, err, "'abc'")
    assert not (tmp_path / "o").exists()


def test_construct_into_an_unwritable_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, err = run(capsys, "model", "construct", "llama_tiny", "-o", blocker / "sub")
    assert_one_line_error(code, err, "is a file")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        probe = readonly / ".probe"
        try:
            probe.mkdir()  # root ignores permission bits: then nothing here is unwritable
            probe.rmdir()
            writable_anyway = True
        except OSError:
            writable_anyway = False
        if not writable_anyway:
            code, err = run(capsys, "model", "construct", "llama_tiny", "-o", readonly / "x")
            assert_one_line_error(code, err, "not writable")
    finally:
        readonly.chmod(0o700)


def test_construct_with_a_25_digit_seed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(
        capsys, "model", "construct", "llama_tiny", "-o", tmp_path / "o", "--seed", "9" * 25
    )
    assert_one_line_error(code, err, "seed")
