"""Tests for lmhub.checkpoint.writers: HF sharded layout, atomic saves, size parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file

from lmhub.checkpoint import writers
from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.writers import (
    atomic_write_bytes,
    atomic_write_text,
    parse_size,
    save_safetensors_sharded,
)


def _state(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` float32 tensors of 1 KiB each, plus a few odd ones."""
    g = torch.Generator().manual_seed(seed)
    out = {f"layers.{i}.weight": torch.randn(16, 16, generator=g) for i in range(n)}
    out["scalar"] = torch.tensor(seed, dtype=torch.int64)
    out["mask"] = torch.tensor([True, False])
    out["half"] = torch.randn(3, generator=g).bfloat16()
    return out


def _assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name, t in want.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t), name


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _read(directory: Path) -> dict[str, torch.Tensor]:
    with open_checkpoint(directory) as reader:
        return dict(reader.iter_tensors())


# ---------------------------------------------------------------------------------------------
# Layout and round trips


def test_single_file_round_trip(tmp_path: Path) -> None:
    state = _state()
    files = save_safetensors_sharded(state, tmp_path / "out", metadata={"step": "10"})
    assert files == [tmp_path / "out" / "model.safetensors"]
    assert os.listdir(tmp_path / "out") == ["model.safetensors"]
    _assert_same(load_file(files[0]), state)
    with safe_open(files[0], framework="pt") as f:
        assert f.metadata() == {"format": "pt", "step": "10"}
    for mmap in (True, False):
        with open_checkpoint(tmp_path / "out", mmap=mmap) as reader:
            _assert_same(dict(reader.iter_tensors()), state)


def test_sharded_round_trip_and_index(tmp_path: Path) -> None:
    state = _state(n=6)
    files = save_safetensors_sharded(state, tmp_path, max_shard_size="2KiB")
    shards, index_path = files[:-1], files[-1]
    assert [p.name for p in shards] == [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    assert index_path.name == "model.safetensors.index.json"

    index = json.loads(index_path.read_text())
    assert index["metadata"] == {"total_size": sum(t.nbytes for t in state.values())}
    assert sorted(index["weight_map"]) == sorted(state)
    merged: dict[str, torch.Tensor] = {}
    for shard in shards:
        part = load_file(shard)
        assert sum(t.nbytes for t in part.values()) <= 2048
        assert all(index["weight_map"][k] == shard.name for k in part)
        merged.update(part)
    _assert_same(merged, state)
    _assert_same(_read(tmp_path), state)


def test_tensor_bigger_than_the_limit_gets_its_own_shard(tmp_path: Path) -> None:
    state = {"a": torch.ones(10), "big": torch.ones(1000), "b": torch.ones(10)}
    files = save_safetensors_sharded(state, tmp_path, max_shard_size=100)
    assert [sorted(load_file(f)) for f in files[:-1]] == [["a"], ["big"], ["b"]]


def test_non_contiguous_and_views_are_saved_as_their_values(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    state = {"t": base.t(), "row": torch.arange(8.0)[2:5]}
    save_safetensors_sharded(state, tmp_path)
    _assert_same(
        load_file(tmp_path / "model.safetensors"), {k: v.clone() for k, v in state.items()}
    )


def test_shared_storage_is_refused(tmp_path: Path) -> None:
    w = torch.ones(4, 4)
    with pytest.raises(ValueError, match="'embed' and 'lm_head' share storage"):
        save_safetensors_sharded({"embed": w, "lm_head": w}, tmp_path / "a")
    fused = torch.ones(6, 4)
    with pytest.raises(ValueError, match="share storage"):
        save_safetensors_sharded({"q": fused[:4], "k": fused[3:]}, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_disjoint_views_of_one_buffer_are_saved(tmp_path: Path) -> None:
    # Tensors read from a checkpoint are views of one buffer per file; they must save as they are.
    fused = torch.arange(24.0).view(6, 4)
    save_safetensors_sharded({"q": fused[:3], "k": fused[3:]}, tmp_path)
    loaded = load_file(tmp_path / "model.safetensors")
    assert torch.equal(loaded["q"], fused[:3]) and torch.equal(loaded["k"], fused[3:])


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="complex64"):
        save_safetensors_sharded({"c": torch.ones(2, dtype=torch.complex64)}, tmp_path)
    with pytest.raises(ValueError, match="strings to strings"):
        save_safetensors_sharded({"w": torch.ones(1)}, tmp_path, metadata={"step": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="'12 parsecs'"):
        save_safetensors_sharded({"w": torch.ones(1)}, tmp_path, max_shard_size="12 parsecs")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        save_safetensors_sharded({"w": torch.ones(1)}, tmp_path / "file")


def test_filename_prefix_and_new_directory_permissions(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "adapter"
    files = save_safetensors_sharded({"w": torch.ones(2)}, target, filename_prefix="adapter")
    assert files == [target / "adapter.safetensors"]
    assert torch.equal(_read(target)["w"], torch.ones(2))
    umask = os.umask(0)
    os.umask(umask)
    # Not mkdtemp's 0o700: the staging directory becomes the checkpoint directory.
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.fixture(scope="module")
def tiny_llama() -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


def test_transformers_loads_our_sharded_save(tmp_path: Path, tiny_llama: torch.nn.Module) -> None:
    transformers = pytest.importorskip("transformers")
    state = tiny_llama.state_dict()
    tiny_llama.config.save_pretrained(tmp_path)
    files = save_safetensors_sharded(state, tmp_path, max_shard_size="100KB")
    assert len(files) > 2
    loaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path)
    _assert_same(loaded.state_dict(), state)


# ---------------------------------------------------------------------------------------------
# Atomicity


def _fail_after_first_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    real = writers._write_shard
    calls = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(args)
        if len(calls) > 1:
            raise OSError("simulated crash: disk full")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writers, "_write_shard", flaky)


def test_crash_mid_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ckpt"
    old = _state(seed=1)
    save_safetensors_sharded(old, target, max_shard_size="2KiB")
    (target / "config.json").write_text('{"hidden_size": 16}')
    before = _snapshot(target)

    _fail_after_first_shard(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        save_safetensors_sharded(_state(seed=2), target, max_shard_size="3KiB")

    assert _snapshot(target) == before
    assert os.listdir(tmp_path) == ["ckpt"]  # no staging directory left behind
    _assert_same(_read(target), old)


def test_crash_on_first_save_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_after_first_shard(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        save_safetensors_sharded(_state(), tmp_path / "ckpt", max_shard_size="2KiB")
    assert os.listdir(tmp_path) == []


def test_resaves_replace_weights_keep_other_files_and_drop_stale_shards(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model-card.md").write_text("# card")
    (tmp_path / "model.py").write_text("pass")

    def files() -> list[str]:
        return sorted(os.listdir(tmp_path))

    others = ["config.json", "model-card.md", "model.py"]
    steps = [
        ("1KiB", 4, _state(n=3, seed=1)),  # into an existing directory: 4 shards
        ("2KiB", 2, _state(n=3, seed=2)),  # fewer shards
        ("2KiB", 2, _state(n=3, seed=3)),  # same shard names, new content
        ("1GB", 1, _state(n=3, seed=4)),  # a single file
        ("1KiB", 4, _state(n=3, seed=5)),  # back to shards
    ]
    for limit, count, state in steps:
        written = save_safetensors_sharded(state, tmp_path, max_shard_size=limit)
        names = [p.name for p in written]
        if count == 1:
            assert names == ["model.safetensors"]
        else:
            assert len(names) == count + 1 and names[-1] == "model.safetensors.index.json"
        assert files() == sorted(others + names)
        _assert_same(_read(tmp_path), state)
    assert (tmp_path / "model-card.md").read_text() == "# card"


# ---------------------------------------------------------------------------------------------
# Small files


def test_atomic_write_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "twö")
    assert path.read_text(encoding="utf-8") == "twö"
    atomic_write_bytes(tmp_path / "blob", b"\x00\x01")
    assert (tmp_path / "blob").read_bytes() == b"\x00\x01"

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(writers.os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_write_text(path, "three")
    assert path.read_text(encoding="utf-8") == "twö"
    assert sorted(os.listdir(tmp_path)) == ["blob", "config.json"]


# ---------------------------------------------------------------------------------------------
# parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5GB", 5 * 10**9),
        ("500MB", 500 * 10**6),
        ("2GiB", 2 * 2**30),
        ("100KB", 100_000),
        ("100kib", 102_400),
        (" 1.5 GB ", 1_500_000_000),
        ("123", 123),
        ("7B", 7),
        ("1TiB", 2**40),
    ],
)
def test_parse_size_examples(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@settings(derandomize=True, max_examples=200)
@given(st.integers(min_value=1, max_value=10**30))
def test_parse_size_ints_round_trip(n: int) -> None:
    assert parse_size(n) == n
    assert parse_size(str(n)) == n
    assert parse_size(f"{n}B") == n
    assert parse_size(f"{n}MB") == n * 10**6
    assert parse_size(f"{n} MiB") == n * 2**20


@settings(derandomize=True, max_examples=300)
@given(st.text(max_size=12))
def test_parse_size_rejects_with_the_value_named(text: str) -> None:
    try:
        size = parse_size(text)
    except ValueError as e:
        assert repr(text) in str(e)
    else:
        assert size > 0


@pytest.mark.parametrize("bad", ["", "GB", "5 XB", "-1GB", "1e3", "0", "0.1B", 0, -5, True, 2.5])
def test_parse_size_bad_values(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)
