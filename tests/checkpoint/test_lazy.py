"""Lazy checkpoint tensors: slices read from safetensors with positioned reads equal the eager
tensors sliced alike, only the selected bytes are read, and the weight map's ops give the same
native tensors lazily as eagerly (so a TP rank's slice of a fused tensor is the right rows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lmhub.checkpoint.lazy import LazyTensor, lazy_cat, lazy_stack
from lmhub.checkpoint.readers import CheckpointReader, open_checkpoint
from lmhub.checkpoint.weight_map import Chunk, Concat, KeyRule, Stack, Transpose, WeightMap
from lmhub.errors import ModelCheckpointError, WeightMapError


def _lazy(
    tmp_path: Path, tensors: dict[str, torch.Tensor]
) -> tuple[dict[str, LazyTensor], CheckpointReader]:
    save_file(tensors, str(tmp_path / "model.safetensors"))
    reader = open_checkpoint(tmp_path)
    return dict(reader.iter_lazy()), reader


def test_slices_read_only_their_bytes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    w = torch.randn(12, 10, 6, dtype=torch.bfloat16)
    lazy, reader = _lazy(tmp_path, {"w": w, "b": torch.arange(7, dtype=torch.int16)})
    t = lazy["w"]
    cases = [
        (t.narrow(0, 3, 4), w[3:7], None),  # rows: one contiguous run
        (t.narrow(1, 2, 5), w[:, 2:7], None),  # columns: a run per row
        (t.narrow(2, 1, 2).narrow(0, 6, 6), w[6:, :, 1:3], None),
        (t.transpose(0, 2).narrow(0, 0, 3), w.transpose(0, 2)[:3], None),
        # Short runs are read as the span that covers them (rows 2..9, columns 0..9).
        (t.select_indices(0, torch.tensor([9, 2, 3])), w[[9, 2, 3]], 8 * 10 * 6),
        (t.select_indices(1, torch.tensor([7, 0, 1, 9])), w[:, [7, 0, 1, 9]], 12 * 10 * 6),
        (t, w, None),
    ]
    for cut, want, elements in cases:
        before = reader.read_log.total
        got = cut.read()
        assert got.shape == want.shape and torch.equal(got, want) and got.is_contiguous()
        assert reader.read_log.total - before == (elements or want.numel()) * 2
    assert torch.equal(lazy["b"].narrow(0, 2, 3).read(), torch.arange(2, 5, dtype=torch.int16))
    assert set(reader.read_log.bytes_by_name) == {"w", "b"}


def test_joined_and_stacked_slices(tmp_path: Path) -> None:
    torch.manual_seed(1)
    a, b = torch.randn(4, 6), torch.randn(5, 6)
    lazy, _ = _lazy(tmp_path, {"a": a, "b": b, "c": torch.randn(4, 6)})
    cat = lazy_cat([lazy["a"], lazy["b"]], 0)
    full = torch.cat([a, b])
    assert torch.equal(cat.narrow(0, 2, 5).read(), full[2:7])
    assert torch.equal(cat.narrow(1, 3, 3).read(), full[:, 3:])
    assert torch.equal(cat.transpose(0, 1).narrow(1, 3, 4).read(), full.t()[:, 3:7])
    stack = lazy_stack([lazy["a"], lazy["c"]], 0)
    dense = torch.stack([a, lazy["c"].read()])
    assert torch.equal(stack.narrow(0, 1, 1).read(), dense[1:])
    assert torch.equal(stack.narrow(2, 1, 2).read(), dense[:, :, 1:3])
    assert torch.equal(stack.transpose(1, 2).read(), dense.transpose(1, 2))
    assert torch.equal(stack.transpose(0, 1).read(), dense.transpose(0, 1))
    with pytest.raises(ValueError, match="Cannot join"):
        lazy_cat([lazy["a"], lazy["b"]], 1)
    with pytest.raises(ValueError, match="Cannot stack"):
        lazy_stack([lazy["a"], lazy["b"]], 0)


def test_a_row_slice_of_a_cat_reads_only_its_part(tmp_path: Path) -> None:
    lazy, reader = _lazy(tmp_path, {"a": torch.zeros(4, 6), "b": torch.ones(5, 6)})
    lazy_cat([lazy["a"], lazy["b"]], 0).narrow(0, 4, 5).read()
    assert reader.read_log.bytes_by_name == {"b": 5 * 6 * 4}


RULES = {
    "gpt2 c_attn": (
        KeyRule("c_attn", ("q", "k", "v"), ops=(Transpose(), Chunk(dim=0))),
        {"c_attn": (8, 24)},
    ),
    "phi3 qkv sizes": (
        KeyRule("qkv", ("q", "k", "v"), ops=(Chunk(dim=0, sizes=(8, 4, 4)),)),
        {"qkv": (16, 6)},
    ),
    "neox per-head groups": (
        KeyRule("qkv", ("q", "k", "v"), ops=(Chunk(dim=0, groups=4),)),
        {"qkv": (24, 5)},
    ),
    "gpt-oss transpose + interleave": (
        KeyRule("gate_up", ("gate", "up"), ops=(Transpose(1, 2), Chunk(dim=1, groups=6))),
        {"gate_up": (4, 5, 12)},
    ),
    "concat in groups": (
        KeyRule(("x", "y"), "xy", ops=(Concat(dim=1, groups=2),)),
        {"x": (6, 4), "y": (6, 8)},
    ),
    "stacked experts": (
        KeyRule("e.{e}.w", "experts", ops=(Stack("e", 4),)),
        {f"e.{e}.w": (6, 3) for e in range(4)},
    ),
}


@pytest.mark.parametrize("name", list(RULES))
def test_weight_map_ops_give_the_same_slices_lazily(tmp_path: Path, name: str) -> None:
    rule, shapes = RULES[name]
    wm = WeightMap([rule])
    torch.manual_seed(2)
    tensors = {k: torch.randn(s) for k, s in shapes.items()}
    eager = {k: t for k, t, _ in wm.convert_to_native(tensors.items())}
    lazy, reader = _lazy(tmp_path, tensors)
    natives = {k: t for k, t, _ in wm.convert_to_native(lazy.items())}
    assert reader.read_log.total == 0  # converting reads nothing
    assert set(natives) == set(eager)
    for key, want in eager.items():
        got = natives[key]
        assert isinstance(got, LazyTensor) and got.shape == tuple(want.shape)
        assert torch.equal(got.read(), want)
        for dim in range(want.ndim):  # each half, as a TP=2 rank would take it
            half = want.shape[dim] // 2
            assert torch.equal(
                got.narrow(dim, half, want.shape[dim] - half).read(),
                want.narrow(dim, half, want.shape[dim] - half),
            )


def test_lazy_ops_report_mismatched_shapes(tmp_path: Path) -> None:
    wm = WeightMap([KeyRule("e.{e}.w", "experts", ops=(Stack("e", 2),))])
    lazy, _ = _lazy(tmp_path, {"e.0.w": torch.zeros(2, 3), "e.1.w": torch.zeros(3, 3)})
    with pytest.raises(WeightMapError, match="differ"):
        list(wm.convert_to_native(lazy.items()))


def test_long_runs_are_read_alone(tmp_path: Path) -> None:
    w = torch.randn(8, 2048)  # 8 KiB rows
    lazy, reader = _lazy(tmp_path, {"w": w})
    rows = torch.tensor([0, 1, 5, 6])
    assert torch.equal(lazy["w"].select_indices(0, rows).read(), w[rows])
    assert reader.read_log.total == 4 * 2048 * 4


def test_pickles_are_read_whole_and_cut_alike(tmp_path: Path) -> None:
    w = torch.randn(6, 4)
    torch.save({"w": w}, tmp_path / "model.pt")
    with open_checkpoint(tmp_path / "model.pt") as reader:
        lazy = dict(reader.iter_lazy())
        assert torch.equal(lazy["w"].transpose(0, 1).narrow(1, 2, 3).read(), w.t()[:, 2:5])


def test_a_file_cut_short_after_opening_is_an_error(tmp_path: Path) -> None:
    lazy, _ = _lazy(tmp_path, {"w": torch.randn(64, 64)})
    with open(tmp_path / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ModelCheckpointError, match="ended inside the tensor 'w'"):
        lazy["w"].narrow(0, 32, 32).read()
