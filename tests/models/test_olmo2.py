"""The OLMo 2 family: preset sizes, post-norm-only layers, whole-projection q/k norms, and its
config.json mapping (parity with transformers is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.olmo2 import olmo2_family

# The model pages' parameter counts (Hugging Face's safetensors totals), as printed.
PUBLISHED = {"olmo2_1b": 1.48e9, "olmo2_7b": 7.30e9, "olmo2_13b": 13.7e9}
EXACT = {"olmo2_1b": 1_484_916_736, "olmo2_7b": 7_298_617_344, "olmo2_13b": 13_716_198_400}

HF_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 160,
}


def hf() -> Any:
    assert olmo2_family.hf is not None
    return olmo2_family.hf


def tiny(**overrides: Any) -> Any:
    config = dataclasses.replace(olmo2_family.archs.get("olmo2_tiny"), **overrides)
    return lmhub.get_model_hub("olmo2").create_new_model(config).eval()


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(olmo2_family.archs) - {"olmo2_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("olmo2")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())
    assert total == EXACT[arch]
    assert total == pytest.approx(PUBLISHED[arch], rel=0.01)


@pytest.mark.parametrize("arch", olmo2_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = olmo2_family.archs.get(arch)
    hf_config = hf().config_to_hf(config)
    assert "head_dim" not in hf_config  # transformers' Olmo2Config has no such field
    assert hf().config_from_hf(hf_config) == config


def test_missing_keys_take_transformers_defaults() -> None:
    config = hf().config_from_hf(HF_CONFIG)
    assert (config.qk_norm, config.qk_norm_scope) == (True, "projection")
    assert (config.pre_norms, config.sandwich_norms) == (False, True)
    assert (config.norm_eps, config.pad_token_id, config.eos_token_id) == (1e-5, 1, 50279)
    assert config.bos_token_id is None and config.sliding_window is None


def test_layers_have_post_norms_only() -> None:
    keys = set(tiny().state_dict())
    for i in range(2):
        assert {f"layers.{i}.attn_post_norm.weight", f"layers.{i}.ffn_post_norm.weight"} <= keys
        assert not {f"layers.{i}.attn_norm.weight", f"layers.{i}.ffn_norm.weight"} & keys


def test_layer_adds_the_normed_sublayer_outputs_to_the_raw_residual() -> None:
    model = tiny(num_layers=1)
    layer = model.layers[0]
    x = torch.randn(1, 5, 256)
    with torch.no_grad():
        h = x + layer.attn_post_norm(layer.attn(x, is_causal=True))
        want = h + layer.ffn_post_norm(layer.ffn(h))
        assert torch.allclose(layer(x, is_causal=True), want)


def test_q_and_k_are_normalised_over_the_whole_projection() -> None:
    model = tiny(num_layers=1, norm_eps=1e-12)
    attn = model.layers[0].attn
    assert attn.q_norm.weight.shape == (8 * 32,) and attn.k_norm.weight.shape == (4 * 32,)
    ids = torch.randint(0, 259, (1, 9))
    with torch.no_grad():
        before = model(ids)
        # One head scaled alone changes the output (a per-head norm would undo it) ...
        attn.q_proj.weight[:32].mul_(3.0)
        changed = model(ids)
        assert (changed - before).abs().max() > 1e-3
        # ... but the whole projection scaled at once does not.
        attn.q_proj.weight[:32].div_(3.0)
        attn.q_proj.weight.mul_(3.0)
        attn.k_proj.weight.mul_(0.25)
        assert torch.allclose(model(ids), before, atol=1e-4)


def test_export_refuses_what_transformers_olmo2_lacks() -> None:
    for field, value in (("sliding_window", 8), ("pre_norms", True), ("qk_norm_scope", "head")):
        config = dataclasses.replace(olmo2_family.archs.get("olmo2_tiny"), **{field: value})
        with pytest.raises(ConfigError) as info:
            hf().config_to_hf(config)
        assert info.value.field == field


def test_other_families_refuse_olmo_knobs_on_export() -> None:
    llama = lmhub.get_family("llama").hf
    assert llama is not None
    config = dataclasses.replace(lmhub.get_family("llama").archs.get("llama_tiny"), pre_norms=False)
    with pytest.raises(ConfigError) as info:
        llama.config_to_hf(config)
    assert info.value.field == "pre_norms"


# allenai/OLMo-2-1124-7B's config.json.
OLMO2_7B_JSON: dict[str, Any] = {
    "architectures": ["Olmo2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "eos_token_id": 100257,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "max_position_embeddings": 4096,
    "model_type": "olmo2",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "pad_token_id": 100277,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 500000,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 100352,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(OLMO2_7B_JSON) == olmo2_family.archs.get("olmo2_7b")
