"""The Stack weight-map op (per-expert tensors into one stacked tensor) and MXFP4 dequantisation."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.checkpoint.mxfp4 import Mxfp4Dequantize, dequantize_mxfp4
from lmhub.checkpoint.weight_map import KeyRule, Stack, WeightMap
from lmhub.errors import WeightMapError


@dataclass
class _Moe:
    num_experts: int


@dataclass
class _Config:
    moe: _Moe = field(default_factory=lambda: _Moe(3))


def _map(experts: int = 3) -> WeightMap:
    rule = KeyRule(
        "model.layers.{i}.experts.{e}.w1.weight",
        "layers.{i}.gate_proj",
        ops=(Stack("e", "moe.num_experts"),),
    )
    other = KeyRule("model.{name}.weight", "{name}.weight")
    return WeightMap([rule, other]).bind(_Config(_Moe(experts)))


@settings(max_examples=25, deadline=None)
@given(experts=st.integers(1, 5), layers=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_stack_round_trips_in_any_order(experts: int, layers: int, seed: int) -> None:
    wm = _map(experts)
    gen = torch.Generator().manual_seed(seed)
    external = {
        f"model.layers.{i}.experts.{e}.w1.weight": torch.randn(3, 2, generator=gen)
        for i in range(layers)
        for e in range(experts)
    }
    external["model.norm.weight"] = torch.randn(2, generator=gen)
    items = list(external.items())
    random.Random(seed).shuffle(items)  # shards hold experts in any order
    native = {k: t for k, t, _ in wm.convert_to_native(items)}
    assert set(native) == {f"layers.{i}.gate_proj" for i in range(layers)} | {"norm.weight"}
    for i in range(layers):
        want = torch.stack(
            [external[f"model.layers.{i}.experts.{e}.w1.weight"] for e in range(experts)]
        )
        assert torch.equal(native[f"layers.{i}.gate_proj"], want)
    back = dict(wm.convert_to_external(native.items()))
    assert back.keys() == external.keys()
    assert all(torch.equal(back[k], external[k]) for k in external)


def test_stack_names_the_key_of_an_expert_beyond_the_config() -> None:
    with pytest.raises(WeightMapError, match=r"model\.layers\.0\.experts\.3\.w1\.weight") as err:
        list(_map(3).convert_to_native([("model.layers.0.experts.3.w1.weight", torch.zeros(1))]))
    assert err.value.key == "model.layers.0.experts.3.w1.weight"


def test_an_incomplete_stack_comes_back_unconverted() -> None:
    out = list(_map(3).convert_to_native([("model.layers.0.experts.1.w1.weight", torch.zeros(1))]))
    assert out[0][0] is None and out[0][2] == "model.layers.0.experts.1.w1.weight"


def test_stack_maps_single_keys_for_layout_detection() -> None:
    wm = _map(3)
    assert wm.to_native("model.layers.2.experts.1.w1.weight") == "layers.2.gate_proj"
    assert wm.to_external("layers.2.gate_proj") == "model.layers.2.experts.0.w1.weight"


def test_a_stack_placeholder_must_be_external_only() -> None:
    with pytest.raises(ValueError, match="Stack"):
        KeyRule("a.{e}.w", "b.{e}.w", ops=(Stack("e", 2),))


# -- MXFP4 ---------------------------------------------------------------------------------------


def _random_mxfp4(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (*shape, 16), generator=gen, dtype=torch.uint8)
    scales = torch.randint(110, 140, shape, generator=gen, dtype=torch.uint8)
    return blocks, scales


def test_mxfp4_matches_transformers_reference_on_random_blocks() -> None:
    pytest.importorskip("transformers")
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    blocks, scales = _random_mxfp4((3, 10, 4), seed=0)  # [experts, rows, groups]
    ours = dequantize_mxfp4(blocks, scales)
    theirs = convert_moe_packed_tensors(blocks, scales, dtype=torch.bfloat16)  # [e, cols, rows]
    assert ours.shape == (3, 10, 128) and ours.dtype == torch.bfloat16
    assert torch.equal(ours, theirs.transpose(1, 2))


def test_mxfp4_decodes_the_e2m1_table() -> None:
    # Byte 0x21: low nibble 1 (+0.5) first, high nibble 2 (+1.0); 0xF8: -0.0 then -6.0.
    blocks = torch.tensor([[[0x21] + [0xF8] * 15]], dtype=torch.uint8)
    scales = torch.tensor([[128]], dtype=torch.uint8)  # 2 ** 1
    out = dequantize_mxfp4(blocks, scales, dtype=torch.float32)
    assert out[0, :4].tolist() == [1.0, 2.0, -0.0, -12.0]


def test_mxfp4_rejects_mismatched_shapes_and_export() -> None:
    blocks, scales = _random_mxfp4((2, 4), seed=1)
    with pytest.raises(WeightMapError, match="do not fit"):
        dequantize_mxfp4(blocks, scales[:, :3])
    with pytest.raises(WeightMapError, match="does not write MXFP4"):
        Mxfp4Dequantize().inverse([torch.zeros(1)], 2, int, "k")
