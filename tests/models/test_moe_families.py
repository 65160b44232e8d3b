"""The mixtral, qwen3_moe and gpt_oss families: preset sizes (total and active per token),
config.json mappings and what export refuses (parity is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import lmhub
from lmhub.errors import ConfigError
from lmhub.nn.moe import MoeConfig, count_parameters

# (total, active per token) in billions, as the model cards print them. gpt-oss's card counts
# the active parameters without the input embedding (a lookup); the others count it.
PUBLISHED: dict[str, tuple[float, float]] = {
    "mixtral_8x7b": (46.7, 12.9),
    "mixtral_8x22b": (141.0, 39.0),
    "qwen3_30b_a3b": (30.5, 3.3),
    "qwen3_235b_a22b": (235.0, 22.0),
    "gpt_oss_20b": (20.91, 3.61),
    "gpt_oss_120b": (116.83, 5.13),
}
FAMILIES = ("mixtral", "qwen3_moe", "gpt_oss")


def test_every_published_preset_is_sized() -> None:
    archs = {a for f in FAMILIES for a in lmhub.get_model_hub(f).get_archs()}
    assert set(PUBLISHED) == archs - {f"{f}_tiny" for f in FAMILIES}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_counts_match_the_published_sizes(arch: str) -> None:
    family = lmhub.models.registry.find_arch(arch)
    assert family is not None
    hub = lmhub.get_model_hub(family.name)
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total, active = count_parameters(model)
    if family.name == "gpt_oss":
        active -= model.embed.weight.numel()
    published_total, published_active = PUBLISHED[arch]
    assert total == pytest.approx(published_total * 1e9, rel=0.01)
    if arch == "qwen3_30b_a3b":  # the card truncates 3.35B to "3.3B"
        assert int(active / 1e8) / 10 == published_active
    else:
        assert active == pytest.approx(published_active * 1e9, rel=0.01)


@pytest.mark.parametrize("family", FAMILIES)
def test_presets_map_to_hf_and_back_exactly(family: str) -> None:
    fam = lmhub.get_family(family)
    assert fam.hf is not None
    for arch in fam.archs.names():
        config = fam.archs.get(arch)
        back = fam.hf.config_from_hf(fam.hf.config_to_hf(config))
        assert back == dataclasses.replace(config, head_dim=config.resolved_head_dim()), arch


def _hf(family: str) -> Any:
    fam = lmhub.get_family(family)
    assert fam.hf is not None
    return fam.hf


@pytest.mark.parametrize(
    ("family", "field", "value"),
    [
        ("mixtral", "num_shared_experts", 1),
        ("mixtral", "norm_topk", False),
        ("mixtral", "expert_inner_dim", 17),
        ("qwen3_moe", "scoring", "sigmoid"),
        ("qwen3_moe", "expert_bias", True),
        ("gpt_oss", "router_bias", False),
        ("gpt_oss", "swiglu_limit", None),
    ],
)
def test_export_refuses_what_the_hf_class_cannot_express(
    family: str, field: str, value: Any
) -> None:
    config = lmhub.get_family(family).archs.get(f"{family}_tiny")
    assert config.moe is not None
    setattr(config.moe, field, value)
    with pytest.raises(ConfigError) as err:
        _hf(family).config_to_hf(config)
    assert err.value.field == f"moe.{field}"


def test_dense_families_refuse_moe_and_sinks() -> None:
    config = lmhub.get_family("llama").archs.get("llama_tiny")
    config.moe = MoeConfig(num_experts=4, top_k=2, expert_inner_dim=64)
    with pytest.raises(ConfigError, match="'moe'"):
        _hf("llama").config_to_hf(config)
    config = lmhub.get_family("mistral").archs.get("mistral_tiny")
    config.attn_sinks = True
    with pytest.raises(ConfigError, match="attn_sinks"):
        _hf("mistral").config_to_hf(config)


def test_qwen3_moe_dense_layers_follow_transformers_rule() -> None:
    base = {
        "hidden_size": 64,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 100,
    }
    config = _hf("qwen3_moe").config_from_hf(
        {**base, "decoder_sparse_step": 2, "mlp_only_layers": [3]}
    )
    assert config.moe.dense_layers == [0, 2, 3, 4]
    assert [config.moe.layer_is_sparse(i) for i in range(6)] == [
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert config.head_dim is None and config.resolved_head_dim() == 16
    assert config.moe.norm_topk is False  # transformers' default
    hf = _hf("qwen3_moe").config_to_hf(config)
    assert hf["mlp_only_layers"] == [0, 2, 3, 4] and hf["decoder_sparse_step"] == 1


def test_gpt_oss_defaults_are_transformers_defaults() -> None:
    config = _hf("gpt_oss").config_from_hf(
        {
            "hidden_size": 64,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 100,
            "quantization_config": {"quant_method": "mxfp4"},
        }
    )
    assert config.layer_types == ["sliding", "full", "sliding", "full"]
    assert config.sliding_window == 128 and config.attn_sinks and config.attn_bias
    assert config.rope_theta == 150_000.0
    assert config.rope_scaling is not None and config.rope_scaling.kind == "yarn"
    assert config.rope_scaling.truncate is False and config.rope_scaling.factor == 32.0
    assert config.moe is not None and config.moe.swiglu_limit == 7.0 and config.moe.top_k == 4
