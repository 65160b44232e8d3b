"""The Phi-3 family: preset sizes, the fused-projection weight map, and its config.json mapping
(parity, longrope included, is in tests/oracle)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.phi3 import phi3_family
from tests.models.phi3_published import PHI3_MINI_4K_JSON, PHI3_MINI_128K_JSON, PHI4_MINI_JSON

# Exact counts of each preset; the published sizes (model cards: 3.8B, 14B, 3.8B) are rounded,
# Hugging Face's safetensors metadata lists 3.82B, 14.0B, 3.82B and 3.84B.
COUNTS = {
    "phi3_mini_4k": 3_821_079_552,
    "phi3_mini_128k": 3_821_079_552,
    "phi3_medium_4k": 13_960_238_080,
    "phi3_5_mini": 3_821_079_552,
    "phi4_mini": 3_836_021_760,
}
PUBLISHED = {
    "phi3_mini_4k": 3.82e9,
    "phi3_mini_128k": 3.82e9,
    "phi3_medium_4k": 14.0e9,
    "phi3_5_mini": 3.82e9,
    "phi4_mini": 3.84e9,
}


def hf() -> Any:
    assert phi3_family.hf is not None
    return phi3_family.hf


def count(arch: str) -> int:
    hub = lmhub.get_model_hub("phi3")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    return sum(p.numel() for p in model.parameters())


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(COUNTS) == set(phi3_family.archs) - {"phi3_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    assert count(arch) == COUNTS[arch]
    assert count(arch) == pytest.approx(PUBLISHED[arch], rel=0.01)


@pytest.mark.parametrize("arch", ["phi3_medium_4k", "phi4_mini"])
def test_preset_counts_equal_transformers_model_of_the_same_config(arch: str) -> None:
    import transformers

    fields = hf().config_to_hf(phi3_family.archs.get(arch))
    with torch.device("meta"):
        theirs = transformers.Phi3ForCausalLM(transformers.Phi3Config(**fields))
    assert sum(p.numel() for p in theirs.parameters()) == count(arch)


@pytest.mark.parametrize("arch", phi3_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = phi3_family.archs.get(arch)
    back = hf().config_from_hf(hf().config_to_hf(config))
    config.head_dim = config.resolved_head_dim()
    assert back == config


@pytest.mark.parametrize(
    ("arch", "published"),
    [
        ("phi3_mini_4k", PHI3_MINI_4K_JSON),
        ("phi3_mini_128k", PHI3_MINI_128K_JSON),
        ("phi4_mini", PHI4_MINI_JSON),
    ],
)
def test_the_published_config_json_reads_as_the_preset(
    arch: str, published: dict[str, Any]
) -> None:
    preset = phi3_family.archs.get(arch)
    assert hf().config_from_hf(published) == preset
    # And back: every key lmhub writes has the published value (LongRoPE tables included).
    written = hf().config_to_hf(preset)
    for key, value in written.items():
        if key in published and key != "rope_scaling":
            assert value == published[key], key
    if published["rope_scaling"] is not None:
        for table in ("short_factor", "long_factor"):
            assert written["rope_scaling"][table] == published["rope_scaling"][table]


def test_each_longrope_preset_carries_its_own_tables() -> None:
    tables = {
        arch: (scaling.short_factor, scaling.long_factor)
        for arch in ("phi3_mini_128k", "phi3_5_mini", "phi4_mini")
        if (scaling := phi3_family.archs.get(arch).rope_scaling) is not None
    }
    assert len(tables) == 3
    assert len({repr(t) for t in tables.values()}) == 3
    for short, long in tables.values():
        assert short is not None and long is not None
        assert len(short) == len(long) == 48


def test_the_phi3_5_longrope_config_reads_as_the_preset() -> None:
    preset = phi3_family.archs.get("phi3_5_mini")
    assert preset.rope_scaling is not None
    published = {
        **PHI3_MINI_4K_JSON,
        "max_position_embeddings": 131072,
        "sliding_window": 262144,
        # The legacy spelling: no factor (the ratio of the lengths gives it), "type" key.
        "rope_scaling": {
            "type": "longrope",
            "short_factor": preset.rope_scaling.short_factor,
            "long_factor": preset.rope_scaling.long_factor,
        },
    }
    assert hf().config_from_hf(published) == preset
    su = {**published, "rope_scaling": {**published["rope_scaling"], "type": "su"}}
    assert hf().config_from_hf(su) == preset


@pytest.mark.parametrize(
    "where",
    [
        {"partial_rotary_factor": 0.75},
        {"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.75}},
    ],
)
def test_partial_rotary_factor_is_read_from_either_place(where: dict[str, Any]) -> None:
    config = hf().config_from_hf({**PHI3_MINI_4K_JSON, "num_attention_heads": 24, **where})
    assert config.partial_rotary_factor == 0.75 and config.rotary_dim() == 96
    assert config.rope_scaling is None


def test_missing_original_length_defaults_to_transformers_4096() -> None:
    config = {k: v for k, v in PHI3_MINI_4K_JSON.items() if k != "original_max_position_embeddings"}
    factors = [1.0] * 48
    config["max_position_embeddings"] = 8192
    config["rope_scaling"] = {"type": "longrope", "short_factor": factors, "long_factor": factors}
    scaling = hf().config_from_hf(config).rope_scaling
    assert scaling is not None
    assert (scaling.original_max_seq_len, scaling.factor) == (4096, 2.0)


def test_fused_projections_split_by_width_and_join_back() -> None:
    config = phi3_family.archs.get("phi3_tiny")  # GQA: q is wider than k and v
    q, kv, d, ffn = config.q_width, config.kv_width, config.model_dim, config.ffn_inner_dim
    assert (q, kv) == (256, 128)
    qkv = torch.randn(q + 2 * kv, d)
    gate_up = torch.randn(2 * ffn, d)
    external = {
        "model.layers.0.self_attn.qkv_proj.weight": qkv,
        "model.layers.0.mlp.gate_up_proj.weight": gate_up,
    }
    weight_map = phi3_family.weight_map.bind(config)
    native = {k: t for k, t, _ in weight_map.convert_to_native(iter(external.items()))}
    assert torch.equal(native["layers.0.attn.q_proj.weight"], qkv[:q])
    assert torch.equal(native["layers.0.attn.k_proj.weight"], qkv[q : q + kv])
    assert torch.equal(native["layers.0.attn.v_proj.weight"], qkv[q + kv :])
    assert torch.equal(native["layers.0.ffn.gate_proj.weight"], gate_up[:ffn])
    assert torch.equal(native["layers.0.ffn.up_proj.weight"], gate_up[ffn:])
    back = dict(weight_map.convert_to_external(iter(native.items())))
    assert back.keys() == external.keys()
    assert all(torch.equal(back[k], external[k]) for k in external)


def test_export_refuses_knobs_transformers_phi3_lacks() -> None:
    config = phi3_family.archs.get("phi3_tiny")
    config.embedding_multiplier = 2.0
    with pytest.raises(ConfigError, match="'embedding_multiplier'") as info:
        hf().config_to_hf(config)
    assert info.value.field == "embedding_multiplier"


@pytest.mark.parametrize("fraction", [0.0, 1.5, 0.3])
def test_a_bad_rotary_fraction_is_a_config_error(fraction: float) -> None:
    config = phi3_family.archs.get("phi3_tiny")  # 32-wide heads: 0.3 rotates 9, an odd number
    config.partial_rotary_factor = fraction
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert info.value.field == "partial_rotary_factor"
