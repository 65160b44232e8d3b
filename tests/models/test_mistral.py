"""The Mistral family: preset sizes, and its config.json mapping (parity is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.mistral import mistral_family

# Parameter counts Hugging Face reports for the published checkpoints (safetensors metadata).
PUBLISHED = {"mistral_7b_v0_1": 7_241_732_096, "mistral_7b_v0_3": 7_248_023_552}

HF_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 160,
}


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(mistral_family.archs) - {"mistral_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("mistral")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(PUBLISHED[arch], rel=0.01)


@pytest.mark.parametrize("arch", mistral_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    assert mistral_family.hf is not None
    config = mistral_family.archs.get(arch)
    back = mistral_family.hf.config_from_hf(mistral_family.hf.config_to_hf(config))
    # config.json always states head_dim, so the derived width comes back explicit.
    assert back == dataclasses.replace(config, head_dim=config.resolved_head_dim())


@pytest.mark.parametrize(
    ("given", "window"), [({}, 4096), ({"sliding_window": None}, None), ({"sliding_window": 7}, 7)]
)
def test_sliding_window_is_read_as_transformers_reads_it(
    given: dict[str, Any], window: int | None
) -> None:
    assert mistral_family.hf is not None
    config = mistral_family.hf.config_from_hf({**HF_CONFIG, **given})
    assert config.sliding_window == window
    assert config.layer_windows() == [window, window]


def test_keys_transformers_mistral_ignores_are_ignored() -> None:
    assert mistral_family.hf is not None
    config = mistral_family.hf.config_from_hf({**HF_CONFIG, "attention_bias": True})
    assert config.attn_bias is False


@pytest.mark.parametrize(
    ("field", "value"),
    [("qk_norm", True), ("attn_bias", True), ("layer_types", ["full", "sliding"])],
)
def test_export_refuses_what_transformers_mistral_cannot_express(field: str, value: Any) -> None:
    assert mistral_family.hf is not None
    config = lmhub.apply_overrides(mistral_family.archs.get("mistral_tiny"), {"num_layers": 2})
    setattr(config, field, value)
    with pytest.raises(ConfigError, match=f"'{field}'") as info:
        mistral_family.hf.config_to_hf(config)
    assert info.value.field == field


# mistralai/Mistral-7B-v0.1's config.json, as published.
MISTRAL_7B_V0_1_JSON: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"],
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0.dev0",
    "use_cache": True,
    "vocab_size": 32000,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert mistral_family.hf is not None
    config = mistral_family.hf.config_from_hf(MISTRAL_7B_V0_1_JSON)
    assert config == mistral_family.archs.get("mistral_7b_v0_1")
