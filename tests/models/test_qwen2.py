"""The Qwen2 family: preset sizes, and its config.json mapping (parity is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.qwen2 import qwen2_family

# Parameter counts published for the checkpoints: the Qwen2.5 model cards ("Number of
# Parameters"), and Hugging Face's safetensors metadata for Qwen2 (whose shapes Qwen2.5 reuses).
PUBLISHED = {
    "qwen2_0_5b": 0.49e9,
    "qwen2_1_5b": 1.54e9,
    "qwen2_7b": 7.62e9,
    "qwen25_0_5b": 0.49e9,
    "qwen25_1_5b": 1.54e9,
    "qwen25_3b": 3.09e9,
    "qwen25_7b": 7.61e9,
    "qwen25_14b": 14.7e9,
    "qwen25_32b": 32.5e9,
    "qwen25_72b": 72.7e9,
}

HF_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 160,
}


def hf() -> Any:
    assert qwen2_family.hf is not None
    return qwen2_family.hf


def explicit_head_dim(config: Any) -> Any:
    return dataclasses.replace(config, head_dim=config.resolved_head_dim())


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(qwen2_family.archs) - {"qwen2_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("qwen2")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(PUBLISHED[arch], rel=0.01)


@pytest.mark.parametrize("arch", qwen2_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = qwen2_family.archs.get(arch)
    back = hf().config_from_hf(hf().config_to_hf(config))
    assert explicit_head_dim(back) == explicit_head_dim(config)


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"use_sliding_window": False, "sliding_window": 8, "max_window_layers": 1},
        {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 1},
        {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 0},
        {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 4},
        {"use_sliding_window": True, "sliding_window": 8},  # transformers' default: 28
        {"use_sliding_window": True, "sliding_window": 5, "max_window_layers": 3},
    ],
)
def test_sliding_layers_are_those_transformers_slides(given: dict[str, Any]) -> None:
    from transformers import Qwen2Config as HfQwen2Config

    theirs = HfQwen2Config(**HF_CONFIG, **given)
    want = [theirs.sliding_window if t == "sliding_attention" else None for t in theirs.layer_types]
    config = hf().config_from_hf({**HF_CONFIG, **given})
    assert config.layer_windows() == want
    # Written back, transformers reads the same layers and window.
    again = HfQwen2Config(**hf().config_to_hf(config))
    assert [
        again.sliding_window if t == "sliding_attention" else None for t in again.layer_types
    ] == want


def test_explicit_layer_types_win_over_max_window_layers() -> None:
    given = {
        "use_sliding_window": True,
        "sliding_window": 8,
        "max_window_layers": 0,
        "layer_types": ["full_attention", "sliding_attention"] * 2,
    }
    config = hf().config_from_hf({**HF_CONFIG, **given})
    assert config.layer_windows() == [None, 8, None, 8]
    with pytest.raises(ConfigError, match="max_window_layers") as info:
        hf().config_to_hf(config)  # transformers 4 could not read that pattern back
    assert info.value.field == "layer_types"


def test_biases_are_fixed_as_in_transformers() -> None:
    config = hf().config_from_hf({**HF_CONFIG, "attention_bias": False, "mlp_bias": True})
    assert (config.attn_bias, config.attn_output_bias, config.ffn_bias) == (True, False, False)
    model = lmhub.get_model_hub("qwen2").create_new_model(config, meta=True)
    attn = model.layers[0].attn
    assert attn.q_proj.bias is not None and attn.v_proj.bias is not None
    assert attn.o_proj.bias is None


@pytest.mark.parametrize(("field", "value"), [("qk_norm", True), ("attn_output_bias", True)])
def test_export_refuses_what_transformers_qwen2_cannot_express(field: str, value: Any) -> None:
    config = qwen2_family.archs.get("qwen2_tiny")
    setattr(config, field, value)
    with pytest.raises(ConfigError, match=f"'{field}'") as info:
        hf().config_to_hf(config)
    assert info.value.field == field


# Qwen/Qwen2.5-0.5B's config.json, as published (a window is named but not used).
QWEN25_0_5B_JSON: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 896,
    "initializer_range": 0.02,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "max_window_layers": 24,
    "model_type": "qwen2",
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.40.1",
    "use_cache": True,
    "use_mrope": False,
    "use_sliding_window": False,
    "vocab_size": 151936,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    config = hf().config_from_hf(QWEN25_0_5B_JSON)
    assert config == qwen2_family.archs.get("qwen25_0_5b")
    assert config.layer_windows() == [None] * 24
