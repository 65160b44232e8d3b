"""Restricted torch.load refusals name what was refused and never suggest full unpickling."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from lmhub.checkpoint.readers import open_checkpoint, refused_global
from lmhub.errors import ModelCheckpointError

# torch 2.13's own wording of each kind of refusal (from torch/serialization.py and
# torch/_weights_only_unpickler.py), as torch.load raises it.
TORCH_2_13_MESSAGES = [
    (
        "Weights only load failed. In PyTorch 2.6, we changed the default value of the "
        "`weights_only` argument in `torch.load` from `False` to `True`. Re-running `torch.load` "
        "with `weights_only` set to `False` will likely succeed, but it can result in arbitrary "
        "code execution. Do it only if you got the file from a trusted source.\n\n\nTrying to "
        "load unsupported GLOBAL posix.system whose module posix is blocked.\n\nCheck the "
        "documentation of torch.load to learn more about types accepted by default with "
        "weights_only https://pytorch.org/docs/stable/generated/torch.load.html.",
        ("posix.system", True),
    ),
    (
        "Weights only load failed. This file can still be loaded, to do so you have two options, "
        "\x1b[1mdo those steps only if you trust the source of the checkpoint\x1b[0m. \n\t(1) In "
        "PyTorch 2.6, we changed the default value of the `weights_only` argument in "
        "`torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set to "
        "`False` will likely succeed, but it can result in arbitrary code execution. Do it only "
        "if you got the file from a trusted source.\n\t(2) Alternatively, to load with "
        "`weights_only=True` please check the recommended steps in the following error message."
        "\n\tWeightsUnpickler error: Unsupported global: GLOBAL __main__.A was not an allowed "
        "global by default. Please use `torch.serialization.add_safe_globals([__main__.A])` or "
        "the `torch.serialization.safe_globals([__main__.A])` context manager to allowlist this "
        "global if you trust this class/function.\n\nCheck the documentation of torch.load to "
        "learn more about types accepted by default with weights_only "
        "https://pytorch.org/docs/stable/generated/torch.load.html.",
        ("__main__.A", False),
    ),
    (
        "Weights only load failed. In PyTorch 2.6, ...\nPlease file an issue with the following "
        "so that we can make `weights_only=True` compatible with your use case: WeightsUnpickler "
        "error: \n\nTrying to call reduce for unrecognized function <built-in function eval>",
        ("<built-in function eval>", False),
    ),
    (
        "Weights only load failed. ...\n\nCan only build Tensor, Parameter, OrderedDict or types "
        "allowlisted via `add_safe_globals`, but got <class 'mymod.Thing'>",
        ("<class 'mymod.Thing'>", False),
    ),
    ("Weights only load failed. not a refusal at all", None),
]


@pytest.mark.parametrize(("message", "expected"), TORCH_2_13_MESSAGES)
def test_refusals_are_recognised(message: str, expected: tuple[str, bool] | None) -> None:
    assert refused_global(message) == expected


class _RunsACommand:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def _refusal(path: Path) -> str:
    with pytest.raises(ModelCheckpointError) as info, open_checkpoint(path) as reader:
        list(reader.iter_tensors())
    assert info.value.path == path
    message = str(info.value)
    assert "restrict=False" not in message and "weights_only" not in message
    assert "\n" not in message
    return message


def test_a_blocked_global_is_named_and_called_dangerous(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(1), "x": _RunsACommand()}, path)
    message = _refusal(path)
    assert f"{os.system.__module__}.system" in message and "malicious" in message


def test_a_refused_function_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(1), "hook": print}, path)
    assert "refers to print," in _refusal(path)


def test_full_unpickling_of_missing_code_is_a_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gone_module_for_lmhub_test.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_module_for_lmhub_test  # type: ignore[import-not-found]

    path = tmp_path / "ckpt.pt"
    torch.save({"w": torch.ones(1), "t": gone_module_for_lmhub_test.Thing()}, path)
    monkeypatch.delitem(sys.modules, "gone_module_for_lmhub_test")
    (tmp_path / "gone_module_for_lmhub_test.py").unlink()
    reader = open_checkpoint(path, restrict=False)
    with pytest.raises(ModelCheckpointError, match="cannot be imported"):
        list(reader.iter_tensors())
