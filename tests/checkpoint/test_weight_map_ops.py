"""Weight-map tensor ops: transpose, chunk and concat (grouped or not), both ways, streamed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.checkpoint.weight_map import Chunk, Concat, KeyRule, Transpose, WeightMap
from lmhub.errors import WeightMapError

QKV = ("l.{i}.q.weight", "l.{i}.k.weight", "l.{i}.v.weight")


def to_native(wm: WeightMap, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor, _ in wm.convert_to_native(items.items()):
        assert key is not None
        out[key] = tensor
    return out


def test_transpose_is_a_rename_plus_swap_both_ways() -> None:
    wm = WeightMap([KeyRule("h.{i}.fc.weight", "l.{i}.fc.weight", ops=(Transpose(),))])
    w = torch.arange(6.0).view(2, 3)  # Conv1D: [in, out]
    native = to_native(wm, {"h.0.fc.weight": w})
    assert torch.equal(native["l.0.fc.weight"], w.t()) and native["l.0.fc.weight"].is_contiguous()
    back = dict(wm.convert_to_external(native.items()))
    assert list(back) == ["h.0.fc.weight"] and torch.equal(back["h.0.fc.weight"], w)


def test_chunk_splits_a_fused_conv1d_into_q_k_v_and_export_joins_them() -> None:
    wm = WeightMap(
        [
            KeyRule("h.{i}.c_attn.weight", QKV, ops=(Transpose(), Chunk(dim=0))),
            KeyRule("h.{i}.c_attn.bias", tuple(p[:-6] + "bias" for p in QKV), ops=(Chunk(),)),
        ]
    )
    w, b = torch.randn(4, 12), torch.randn(12)  # [in, 3 * out]
    native = to_native(wm, {"h.1.c_attn.weight": w, "h.1.c_attn.bias": b})
    assert torch.equal(native["l.1.q.weight"], w[:, :4].t())
    assert torch.equal(native["l.1.k.weight"], w[:, 4:8].t())
    assert torch.equal(native["l.1.v.weight"], w[:, 8:].t())
    assert torch.equal(native["l.1.v.bias"], b[8:])
    assert wm.to_native("h.1.c_attn.weight") == "l.1.q.weight"
    back = dict(wm.convert_to_external(native.items()))
    assert set(back) == {"h.1.c_attn.weight", "h.1.c_attn.bias"}
    assert torch.equal(back["h.1.c_attn.weight"], w) and torch.equal(back["h.1.c_attn.bias"], b)


def test_grouped_chunk_reads_the_per_head_interleaved_layout() -> None:
    heads, d, dim = 3, 2, 5
    wm = WeightMap([KeyRule("qkv.weight", ("q", "k", "v"), ops=(Chunk(groups="num_heads"),))])
    fused = torch.randn(heads * 3 * d, dim)
    per_head = fused.view(heads, 3, d, dim)
    native = to_native(wm.bind(_Config(num_heads=heads)), {"qkv.weight": fused})
    for j, name in enumerate("qkv"):
        assert torch.equal(native[name], per_head[:, j].reshape(heads * d, dim))
    back = dict(wm.bind(_Config(num_heads=heads)).convert_to_external(native.items()))
    assert torch.equal(back["qkv.weight"], fused)


def test_concat_joins_several_external_tensors_into_one_and_waits_for_all() -> None:
    wm = WeightMap([KeyRule(("m.{i}.gate", "m.{i}.up"), "f.{i}.gate_up", ops=(Concat(dim=0),))])
    gate0, up0, gate1 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    stream = iter([("m.0.up", up0), ("m.1.gate", gate1), ("m.0.gate", gate0), ("x", gate0)])
    out = wm.convert_to_native(stream)
    key, tensor, original = next(out)  # the first group completes on its second member
    assert key == "f.0.gate_up" and original == "m.0.gate + m.0.up"
    assert torch.equal(tensor, torch.cat([gate0, up0]))
    # An unknown key is yielded as it comes; an incomplete group's members come last, unexplained.
    assert [(k, o) for k, _, o in out] == [(None, "x"), (None, "m.1.gate")]
    back = dict(wm.convert_to_external([("f.0.gate_up", tensor)]))
    assert torch.equal(back["m.0.gate"], gate0) and torch.equal(back["m.0.up"], up0)


def test_chunk_with_sizes_splits_unevenly() -> None:
    wm = WeightMap([KeyRule("qkv", ("q", "k", "v"), ops=(Chunk(sizes=("q_dim", 2, 2)),))])
    t = torch.arange(8.0)
    native = to_native(wm.bind(_Config(q_dim=4)), {"qkv": t})
    assert [native[k].tolist() for k in "qkv"] == [[0, 1, 2, 3], [4, 5], [6, 7]]


def test_export_of_an_incomplete_group_names_the_members() -> None:
    wm = WeightMap([KeyRule("qkv", ("q", "k", "v"), ops=(Chunk(),))])
    with pytest.raises(KeyError, match="only 'q'"):
        list(wm.convert_to_external([("q", torch.zeros(2))]))


def test_sizes_that_do_not_fit_are_errors_naming_the_key() -> None:
    wm = WeightMap([KeyRule("qkv.weight", ("q", "k", "v"), ops=(Chunk(),))])
    with pytest.raises(WeightMapError, match=r"'qkv\.weight'.*3 equal parts") as info:
        to_native(wm, {"qkv.weight": torch.zeros(7, 2)})
    assert info.value.key == "qkv.weight"
    grouped = WeightMap([KeyRule("qkv", ("q", "k", "v"), ops=(Chunk(groups="num_heads"),))])
    with pytest.raises(WeightMapError, match="bind"):
        to_native(grouped, {"qkv": torch.zeros(6)})


@pytest.mark.parametrize(
    ("external", "native", "ops"),
    [
        ("a", ("b", "c"), ()),  # several keys without a Chunk
        ("a", ("b", "c"), (Concat(),)),  # the wrong direction
        ("a.{i}", ("b.{i}", "c"), (Chunk(),)),  # placeholders differ
    ],
)
def test_rules_that_cannot_convert_are_refused(external: Any, native: Any, ops: Any) -> None:
    with pytest.raises(ValueError, match=r"rule|placeholders"):
        KeyRule(external, native, ops=ops)


class _Config:
    def __init__(self, **fields: int) -> None:
        self.__dict__.update(fields)


@settings(max_examples=60, deadline=None)
@given(
    groups=st.integers(1, 3),
    sizes=st.lists(st.integers(1, 3), min_size=2, max_size=4),
    other=st.integers(1, 3),
    dim=st.sampled_from([0, 1, -1]),
    transpose=st.booleans(),
    fuse_on_import=st.booleans(),
    layers=st.integers(1, 2),
)
def test_round_trips_are_exact(
    groups: int,
    sizes: list[int],
    other: int,
    dim: int,
    transpose: bool,
    fuse_on_import: bool,
    layers: int,
) -> None:
    """HF -> lmhub -> HF gives back every tensor bit for bit, whatever the op chain."""
    parts = tuple(f"p{j}.{{i}}" for j in range(len(sizes)))
    ops: tuple[Any, ...] = (Transpose(),) if transpose else ()
    split = dim if dim != -1 else 1
    if fuse_on_import:  # several external tensors, one native
        join: Any = Concat(dim=dim, sizes=tuple(sizes), groups="g")
        rule = KeyRule(parts, "fused.{i}", ops=(*ops, join))
    else:
        rule = KeyRule(
            "fused.{i}", parts, ops=(*ops, Chunk(dim=dim, sizes=tuple(sizes), groups="g"))
        )
    wm = WeightMap([rule, KeyRule("plain.{i}", "same.{i}")]).bind(_Config(g=groups))

    def shape(width: int) -> tuple[int, int]:
        # After the optional transpose, `split` is the dimension the op works on.
        s = [other, other]
        s[split] = width * groups
        return (s[1], s[0]) if transpose else (s[0], s[1])

    external: dict[str, torch.Tensor] = {}
    for i in range(layers):
        if fuse_on_import:
            external.update({p.format(i=i): torch.randn(shape(w)) for p, w in zip(parts, sizes)})
        else:
            external[f"fused.{i}"] = torch.randn(shape(sum(sizes)))
        external[f"plain.{i}"] = torch.randn(2)
    items = list(external.items())[::-1]  # any order
    native = to_native(wm, dict(items))
    assert len(native) == layers * (2 if fuse_on_import else len(sizes) + 1)
    back = dict(wm.convert_to_external(native.items()))
    assert back.keys() == external.keys()
    assert all(torch.equal(back[k], external[k]) for k in external)


def test_ignored_keys_are_dropped_on_import_only() -> None:
    wm = WeightMap([KeyRule("h.{i}.w", "l.{i}.w")], ignored=["h.{i}.attn.bias"])
    items = [("h.0.attn.bias", torch.ones(1)), ("h.0.w", torch.zeros(1)), ("h.0.x", torch.ones(1))]
    assert [(k, o) for k, _, o in wm.convert_to_native(items)] == [
        ("l.0.w", "h.0.w"),
        (None, "h.0.x"),
    ]
    assert wm.bind(object()).ignored == ("h.{i}.attn.bias",)
