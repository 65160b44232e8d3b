"""The OLMo 3 family: preset sizes, the sliding-window pattern, the RoPE per layer kind, and
its config.json mapping (parity with transformers is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.olmo3 import olmo3_family

# The model pages' parameter counts (Hugging Face's safetensors totals), as printed.
PUBLISHED = {"olmo3_7b": 7.30e9, "olmo3_32b": 32.2e9}
EXACT = {"olmo3_7b": 7_298_011_136, "olmo3_32b": 32_233_522_176}

HF_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 160,
}


def hf() -> Any:
    assert olmo3_family.hf is not None
    return olmo3_family.hf


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(olmo3_family.archs) - {"olmo3_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("olmo3")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())
    assert total == EXACT[arch]
    assert total == pytest.approx(PUBLISHED[arch], rel=0.01)


@pytest.mark.parametrize("arch", olmo3_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = olmo3_family.archs.get(arch)
    assert hf().config_from_hf(hf().config_to_hf(config)) == config


def test_missing_keys_take_transformers_defaults() -> None:
    config = hf().config_from_hf(HF_CONFIG)
    assert config.layer_types == ["sliding", "sliding", "sliding", "full"] * 2
    assert (config.sliding_window, config.rope_theta, config.rope_local_theta) == (
        4096,
        500_000.0,
        None,
    )
    assert (config.qk_norm_scope, config.pre_norms, config.sandwich_norms) == (
        "projection",
        False,
        True,
    )


def test_flat_rope_keys_read_as_transformers_5_reads_them() -> None:
    # A flat rope_theta / rope_scaling goes to the full layers; the sliding ones keep 500000.
    config = hf().config_from_hf(
        {**HF_CONFIG, "rope_theta": 1e4, "rope_scaling": {"rope_type": "linear", "factor": 2}}
    )
    assert config.rope_theta == 1e4 and config.rope_scaling is not None
    assert (config.rope_scaling.kind, config.rope_local_theta) == ("linear", 500_000.0)


def test_nested_rope_parameters_give_each_layer_kind_its_rope() -> None:
    nested = {
        "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4},
        "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
    }
    config = hf().config_from_hf({**HF_CONFIG, "rope_parameters": nested})
    assert (config.rope_theta, config.rope_local_theta) == (1e4, 100.0)
    hf_config = hf().config_to_hf(config)
    assert hf_config["rope_parameters"]["sliding_attention"] == nested["sliding_attention"]
    assert hf_config["rope_parameters"]["full_attention"] == nested["full_attention"]


def test_a_scaled_sliding_rope_unlike_the_full_one_is_refused() -> None:
    nested = {
        "full_attention": {"rope_type": "default", "rope_theta": 1e4},
        "sliding_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4},
    }
    with pytest.raises(ConfigError) as info:
        hf().config_from_hf({**HF_CONFIG, "rope_parameters": nested})
    assert info.value.field == "rope_parameters.sliding_attention"


def test_unscaled_sliding_layers_rotate_with_their_own_base() -> None:
    model = lmhub.get_model_hub("olmo3").create_new_model(
        olmo3_family.archs.get("olmo3_7b"), meta=True
    )
    assert model.local_rope is not None and model.rope.scaling is not None
    assert model.local_rope.scaling is None


# allenai/Olmo-3-1025-7B's config.json (transformers 4.57). Its shape, window, token ids and YaRN
# keys agree with the public copies code search finds (test configs of other OLMo 3 loaders).
OLMO3_7B_JSON: dict[str, Any] = {
    "architectures": ["Olmo3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "eos_token_id": 100257,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "layer_types": (["sliding_attention"] * 3 + ["full_attention"]) * 8,
    "max_position_embeddings": 65536,
    "model_type": "olmo3",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "pad_token_id": 100277,
    "rms_norm_eps": 1e-06,
    "rope_scaling": {
        "attention_factor": 1.2079441541679836,
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 8.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "yarn",
    },
    "rope_theta": 500000,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "use_cache": True,
    "vocab_size": 100278,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(OLMO3_7B_JSON) == olmo3_family.archs.get("olmo3_7b")


def test_windows_can_be_turned_off() -> None:
    config = dataclasses.replace(
        olmo3_family.archs.get("olmo3_tiny"), sliding_window=None, layer_types=None
    )
    hf_config = hf().config_to_hf(config)
    assert hf_config["layer_types"] == ["full_attention"] * 2
    assert hf().config_from_hf(hf_config).sliding_window is None


def test_an_unknown_layer_type_is_an_olmo3_error() -> None:
    published = {
        **OLMO3_7B_JSON,
        "layer_types": ["chunked_attention", *OLMO3_7B_JSON["layer_types"][1:]],
    }
    with pytest.raises(ConfigError, match="lmhub's OLMo 3 reads only full_attention and") as info:
        hf().config_from_hf(published)
    assert "Gemma" not in str(info.value)
    assert (info.value.field, info.value.value) == ("layer_types", "chunked_attention")
