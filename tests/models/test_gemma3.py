"""The Gemma 3 text family: preset sizes, local/global RoPE bases, q/k norms, and its
config.json mapping in transformers 4 and 5 spellings (parity is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.gemma3 import gemma3_family

# The Gemma 3 report's (Gemma Team, 2025, table 1) embedding and non-embedding parameters of
# the text towers, in millions as printed. (Its embedding counts are a few million above
# vocab_size x model_dim.)
PUBLISHED = {
    "gemma3_1b": (302, 698),
    "gemma3_4b": (675, 3_209),
    "gemma3_12b": (1_012, 10_759),
    "gemma3_27b": (1_416, 25_600),
}

ROPE_KEYS = ("rope_theta", "rope_scaling", "rope_parameters", "rope_local_base_freq")


def hf() -> Any:
    assert gemma3_family.hf is not None
    return gemma3_family.hf


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(gemma3_family.archs) - {"gemma3_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("gemma3")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())  # tied: the head is the embedding
    embedding = model.embed.weight.numel()
    assert (total - embedding) / 1e6 == pytest.approx(PUBLISHED[arch][1], abs=0.5)
    assert embedding / 1e6 == pytest.approx(PUBLISHED[arch][0], rel=0.01)
    assert total / 1e6 == pytest.approx(sum(PUBLISHED[arch]), rel=0.01)


@pytest.mark.parametrize("arch", gemma3_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = gemma3_family.archs.get(arch)
    back = hf().config_from_hf(hf().config_to_hf(config))
    assert back == dataclasses.replace(config, head_dim=config.resolved_head_dim())


@pytest.mark.parametrize("spelling", ["transformers4", "transformers5"])
def test_both_rope_spellings_read_alike(spelling: str) -> None:
    config = gemma3_family.archs.get("gemma3_4b")
    written = hf().config_to_hf(config)
    rest = {k: v for k, v in written.items() if k not in ROPE_KEYS}
    if spelling == "transformers4":
        keys = {k: written[k] for k in ("rope_theta", "rope_scaling", "rope_local_base_freq")}
    else:
        keys = {"rope_parameters": written["rope_parameters"]}
    assert keys and hf().config_from_hf({**rest, **keys}) == config


def test_missing_rope_keys_take_transformers_bases() -> None:
    config = gemma3_family.archs.get("gemma3_1b")
    rest = {k: v for k, v in hf().config_to_hf(config).items() if k not in ROPE_KEYS}
    back = hf().config_from_hf(rest)
    assert (back.rope_theta, back.rope_local_theta, back.rope_scaling) == (1e6, 1e4, None)


def test_layer_pattern_defaults_to_five_sliding_to_one_global() -> None:
    written = hf().config_to_hf(gemma3_family.archs.get("gemma3_1b"))
    assert written["sliding_window_pattern"] == 6
    del written["layer_types"]
    config = hf().config_from_hf(written)
    assert config.layer_types == (["sliding"] * 5 + ["full"]) * 4 + ["sliding"] * 2
    config = hf().config_from_hf({**written, "sliding_window_pattern": 2})
    assert config.layer_types == ["sliding", "full"] * 13


def test_a_scaled_sliding_rope_names_the_key() -> None:
    written = hf().config_to_hf(gemma3_family.archs.get("gemma3_tiny"))
    written["rope_parameters"]["sliding_attention"] = {"rope_type": "linear", "factor": 2.0}
    del written["rope_scaling"]
    with pytest.raises(ConfigError, match="sliding") as info:
        hf().config_from_hf(written)
    assert info.value.field == "rope_parameters.sliding_attention"


def test_export_needs_a_local_rope_base() -> None:
    config = dataclasses.replace(gemma3_family.archs.get("gemma3_tiny"), rope_local_theta=None)
    with pytest.raises(ConfigError) as info:
        hf().config_to_hf(config)
    assert info.value.field == "rope_local_theta"


def test_sliding_layers_rotate_with_the_local_base() -> None:
    config = gemma3_family.archs.get("gemma3_tiny")
    model = lmhub.get_model_hub("gemma3").create_new_model(config).eval()
    assert model.local_rope is not None
    assert model.rope.theta == 1e6 and model.local_rope.theta == 1e4
    assert model.layers[0].attn.q_norm.unit_offset and model.layers[0].attn.k_norm.unit_offset
    ids = torch.tensor([[3, 5, 7, 9, 11]])
    same_base = dataclasses.replace(config, rope_local_theta=config.rope_theta)
    other = lmhub.get_model_hub("gemma3").create_new_model(same_base).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert (model(ids) - other(ids)).abs().max() > 1e-4


# google/gemma-3-1b-pt's config.json (transformers 4.50).
GEMMA3_1B_JSON: dict[str, Any] = {
    "architectures": ["Gemma3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": None,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": None,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 1152,
    "initializer_range": 0.02,
    "intermediate_size": 6912,
    "max_position_embeddings": 32768,
    "model_type": "gemma3_text",
    "num_attention_heads": 4,
    "num_hidden_layers": 26,
    "num_key_value_heads": 1,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06,
    "rope_local_base_freq": 10000,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": 512,
    "sliding_window_pattern": 6,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.50.0.dev0",
    "use_cache": True,
    "vocab_size": 262144,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(GEMMA3_1B_JSON) == gemma3_family.archs.get("gemma3_1b")
