"""A save killed at any instant leaves the previous checkpoint or the new one, never neither.

Every file-system step of a save that a crash could fall between (os.replace, os.rename,
os.unlink, os.fsync) is made to "kill" the save at its k-th call, for every k; the directory
must then load as the old weights or the new ones, and the next save must clean up after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.writers import save_safetensors_sharded

_STEPS = ("replace", "rename", "unlink", "fsync")


class Killed(BaseException):
    """The process died: nothing after this runs (not even cleanup that touches the disk)."""


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"layers.{i}.weight": torch.randn(16, 16, generator=g) for i in range(6)}


def _read(directory: Path) -> dict[str, torch.Tensor]:
    with open_checkpoint(directory) as reader:
        return dict(reader.iter_tensors())


def _same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> bool:
    return sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)


def _count_steps(monkeypatch: pytest.MonkeyPatch, save: Callable[[], Any]) -> int:
    calls = [0]
    for name in _STEPS:
        real = getattr(os, name)

        def counting(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls[0] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, counting)
    try:
        save()
    finally:
        monkeypatch.undo()
    return calls[0]


def _kill_at(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    calls = [0]
    for name in _STEPS:
        real = getattr(os, name)

        def dying(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] >= k:
                raise Killed
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, dying)


# (shard size of the old save, of the new one): same shard count (the case that used to leave
# neither), fewer, more, single <-> sharded, single -> single.
SCENARIOS = [
    ("2KiB", "2KiB"),
    ("2KiB", "4KiB"),
    ("4KiB", "1KiB"),
    ("1GB", "2KiB"),
    ("2KiB", "1GB"),
    ("1GB", "1GB"),
]


@pytest.mark.parametrize("prefix", ["model", "weights"])
@pytest.mark.parametrize(("old_limit", "new_limit"), SCENARIOS)
def test_a_save_killed_at_any_step_leaves_old_or_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old_limit: str, new_limit: str, prefix: str
) -> None:
    old, new, newer = _state(1), _state(2), _state(3)

    def fresh(k: int) -> Path:
        target = tmp_path / f"k{k}" / "ckpt"
        target.parent.mkdir()
        save_safetensors_sharded(old, target, max_shard_size=old_limit, filename_prefix=prefix)
        (target / "config.json").write_text("{}")
        return target

    probe = fresh(0)
    steps = _count_steps(
        monkeypatch,
        lambda: save_safetensors_sharded(
            new, probe, max_shard_size=new_limit, filename_prefix=prefix
        ),
    )
    assert _same(_read(probe), new)
    assert steps > 3
    outcomes = set()
    for k in range(1, steps + 1):
        target = fresh(k)
        _kill_at(monkeypatch, k)
        with pytest.raises(Killed):
            save_safetensors_sharded(new, target, max_shard_size=new_limit, filename_prefix=prefix)
        monkeypatch.undo()
        got = _read(target)
        assert _same(got, old) or _same(got, new), f"killed at step {k}: neither old nor new"
        outcomes.add("new" if _same(got, new) else "old")
        # The next save cleans up: no staging directory, no orphaned shard, and it loads.
        files = save_safetensors_sharded(
            newer, target, max_shard_size=new_limit, filename_prefix=prefix
        )
        assert _same(_read(target), newer)
        assert sorted(os.listdir(target.parent)) == ["ckpt"]
        assert sorted(os.listdir(target)) == sorted(["config.json", *(f.name for f in files)])
    assert outcomes == {"old", "new"}  # the kills did land on both sides of the switch-over


def test_same_shard_count_resave_of_a_model_survives_a_kill_after_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The case from the report: the old index was unlinked before the new shards moved in.
    hub = lmhub.get_model_hub("llama")
    config = lmhub.apply_overrides(hub.get_arch_config("llama_tiny"), ["num_layers=2"])
    torch.manual_seed(0)
    old = hub.create_new_model(config)
    torch.manual_seed(1)
    new = hub.create_new_model(config)
    target = tmp_path / "ckpt"
    lmhub.save_checkpoint(target, old, max_shard_size="300KB")
    steps = _count_steps(
        monkeypatch, lambda: lmhub.save_checkpoint(target, new, max_shard_size="300KB")
    )
    ids = torch.arange(8).reshape(1, 8)
    want = {id(m): m(ids) for m in (old, new)}
    for k in range(1, steps + 1):
        lmhub.save_checkpoint(target, old, max_shard_size="300KB")
        _kill_at(monkeypatch, k)
        with pytest.raises(Killed):
            lmhub.save_checkpoint(target, new, max_shard_size="300KB")
        monkeypatch.undo()
        loaded = lmhub.load_checkpoint(target, hub.create_new_model(config, meta=True))
        logits = loaded(ids)
        assert any(torch.equal(logits, w) for w in want.values()), f"killed at step {k}"
