"""The dense Qwen3 family: preset sizes, q/k norms, and its config.json mapping (parity is in
tests/oracle)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.qwen3 import qwen3_family

# The Qwen3 model cards' "Number of Parameters" and "Number of Parameters (Non-Embedding)", in
# billions, as printed (rounded to the digits shown).
PUBLISHED = {
    "qwen3_0_6b": ("0.6", "0.44"),
    "qwen3_1_7b": ("1.7", "1.4"),
    "qwen3_4b": ("4.0", "3.6"),
    "qwen3_8b": ("8.2", "6.95"),
    "qwen3_14b": ("14.8", "13.2"),
    "qwen3_32b": ("32.8", "31.2"),
}

HF_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 160,
}


def hf() -> Any:
    assert qwen3_family.hf is not None
    return qwen3_family.hf


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(qwen3_family.archs) - {"qwen3_tiny"}


def _digits(printed: str) -> tuple[float, float]:
    """The value (in parameters) and half a unit of its last printed digit."""
    decimals = len(printed.partition(".")[2])
    return float(printed) * 1e9, 0.5 * 10.0**-decimals * 1e9


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("qwen3")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())
    non_embedding = total - model.embed.weight.numel() * (1 if model.config.tie_embeddings else 2)
    published_total, half_unit = _digits(PUBLISHED[arch][0])
    published_non_embedding, _ = _digits(PUBLISHED[arch][1])
    # Within 1% of the more precise figure, and within the rounding of the printed total.
    assert non_embedding == pytest.approx(published_non_embedding, rel=0.01)
    assert math.fabs(total - published_total) <= max(half_unit, 0.01 * published_total)


@pytest.mark.parametrize("arch", qwen3_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = qwen3_family.archs.get(arch)
    back = hf().config_from_hf(hf().config_to_hf(config))
    assert back == dataclasses.replace(config, head_dim=config.resolved_head_dim())


def test_head_dim_defaults_to_transformers_128() -> None:
    config = hf().config_from_hf(HF_CONFIG)
    assert config.head_dim == 128 and config.qk_norm
    assert (config.attn_bias, config.attn_output_bias, config.ffn_bias) == (False, None, False)
    biased = hf().config_from_hf({**HF_CONFIG, "attention_bias": True})
    model = lmhub.get_model_hub("qwen3").create_new_model(biased, meta=True)
    assert model.layers[0].attn.o_proj.bias is not None  # attention_bias covers all four


def test_q_and_k_heads_are_normalised_before_rope() -> None:
    config = lmhub.apply_overrides(
        qwen3_family.archs.get("qwen3_tiny"),
        {"num_layers": 1, "layer_types": None, "norm_eps": 1e-12},
    )
    model = lmhub.get_model_hub("qwen3").create_new_model(config).eval()
    attn = model.layers[0].attn
    assert attn.q_norm.weight.shape == attn.k_norm.weight.shape == (config.resolved_head_dim(),)
    keys = set(model.state_dict())
    assert {"layers.0.attn.q_norm.weight", "layers.0.attn.k_norm.weight"} <= keys
    # Scaling q_proj and k_proj changes nothing (up to the norm's epsilon): each head is
    # normalised before attending.
    ids = torch.randint(0, config.vocab_size, (1, 9))
    with torch.no_grad():
        before = model(ids)
        attn.q_proj.weight.mul_(3.0)
        attn.k_proj.weight.mul_(0.25)
        assert torch.allclose(model(ids), before, atol=1e-4)


def test_export_refuses_a_qwen3_without_qk_norm() -> None:
    config = qwen3_family.archs.get("qwen3_tiny")
    config.qk_norm = False
    with pytest.raises(ConfigError, match="'qk_norm'") as info:
        hf().config_to_hf(config)
    assert info.value.field == "qk_norm"


# Qwen/Qwen3-0.6B's config.json, as published.
QWEN3_0_6B_JSON: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "max_window_layers": 28,
    "model_type": "qwen3",
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(QWEN3_0_6B_JSON) == qwen3_family.archs.get("qwen3_0_6b")
