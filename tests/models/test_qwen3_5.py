"""The Qwen3.5 family: preset sizes (total and active per token), the meta build of the 397B
preset, the config.json mapping of the published layouts, and validation (parity with
transformers is in tests/oracle/test_qwen3_5_parity.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.qwen3_5 import qwen3_5_family

# Nominal sizes in the model names, in billions: (total, active per token). The presets hold
# the text model only (the published totals also count a vision tower of ~0.4B and an MTP head).
# "Active" counts every weight a token touches, embeddings included, as the names do.
PUBLISHED = {
    "qwen3_5_9b": ("9", None),
    "qwen3_5_27b": ("27", None),
    "qwen3_5_35b_a3b": ("35", "3"),
    "qwen3_5_122b_a10b": ("122", "10"),
    "qwen3_5_397b_a17b": ("397", "17"),
}

# The text part of the published Qwen3.5-27B config.json (multimodal layout).
CONFIG_27B: dict[str, Any] = {
    "architectures": ["Qwen3_5ForConditionalGeneration"],
    "model_type": "qwen3_5",
    "text_config": {
        "model_type": "qwen3_5_text",
        "attention_bias": False,
        "attn_output_gate": True,
        "eos_token_id": 248044,
        "full_attention_interval": 4,
        "head_dim": 256,
        "hidden_act": "silu",
        "hidden_size": 5120,
        "intermediate_size": 17408,
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 128,
        "linear_num_key_heads": 16,
        "linear_num_value_heads": 48,
        "linear_value_head_dim": 128,
        "max_position_embeddings": 262144,
        "num_attention_heads": 24,
        "num_hidden_layers": 64,
        "num_key_value_heads": 4,
        "partial_rotary_factor": 0.25,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "mrope_interleaved": True,
            "mrope_section": [11, 11, 10],
            "partial_rotary_factor": 0.25,
            "rope_theta": 10000000,
            "rope_type": "default",
        },
        "tie_word_embeddings": False,
        "vocab_size": 248320,
    },
    "vision_config": {"depth": 27},
    "tie_word_embeddings": False,
}


def hf() -> Any:
    assert qwen3_5_family.hf is not None
    return qwen3_5_family.hf


def counts(arch: str) -> tuple[int, int]:
    hub = lmhub.get_model_hub("qwen3_5")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())
    moe = model.config.moe
    if moe is None:
        return total, total
    per_expert = sum(p[0].numel() for p in model.layers[0].ffn.experts.parameters())
    return total, total - model.config.num_layers * (moe.num_experts - moe.top_k) * per_expert


def _digits(printed: str) -> tuple[float, float]:
    """The value (in parameters) and half a unit of its last printed digit."""
    decimals = len(printed.partition(".")[2])
    return float(printed) * 1e9, 0.5 * 10.0**-decimals * 1e9


# The small sizes publish no figure finer than their names, and their checkpoints also hold a
# vision tower (~0.1B on 0.8B) and an MTP layer: the text model is held to the name's printed
# precision (0.8 -> within 0.05B; 4 -> within 0.5B) instead of 1%.
PUBLISHED_SMALL = {"qwen3_5_0_8b": "0.8", "qwen3_5_4b": "4"}


def test_every_published_preset_is_sized() -> None:
    sized = set(PUBLISHED) | set(PUBLISHED_SMALL)
    assert sized == set(qwen3_5_family.archs) - {"qwen3_5_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED_SMALL))
def test_small_preset_parameter_counts_match_their_names(arch: str) -> None:
    total, active = counts(arch)
    assert total == active
    value, half_unit = _digits(PUBLISHED_SMALL[arch])
    assert abs(total - value) <= half_unit


# The text part of the published Qwen3.5-0.8B config.json (multimodal layout).
CONFIG_0_8B: dict[str, Any] = {
    "architectures": ["Qwen3_5ForConditionalGeneration"],
    "model_type": "qwen3_5",
    "tie_word_embeddings": True,
    "text_config": {
        "model_type": "qwen3_5_text",
        "vocab_size": 248320,
        "hidden_size": 1024,
        "intermediate_size": 3584,
        "num_hidden_layers": 24,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "attention_bias": False,
        "attn_output_gate": True,
        "linear_num_key_heads": 16,
        "linear_num_value_heads": 16,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
        "rms_norm_eps": 1e-6,
        "full_attention_interval": 4,
        "max_position_embeddings": 262144,
        "tie_word_embeddings": True,
        "eos_token_id": 248044,
        "mtp_num_hidden_layers": 1,
        "rope_parameters": {
            "mrope_interleaved": True,
            "mrope_section": [11, 11, 10],
            "rope_theta": 10000000,
            "partial_rotary_factor": 0.25,
        },
    },
    "vision_config": {"depth": 12, "hidden_size": 768},
}


def test_the_published_0_8b_config_reads_as_the_preset() -> None:
    assert hf().config_from_hf(CONFIG_0_8B) == qwen3_5_family.archs.get("qwen3_5_0_8b")


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_counts_match_the_published_sizes(arch: str) -> None:
    total, active = counts(arch)
    published_total, active_name = PUBLISHED[arch]
    assert total == pytest.approx(float(published_total) * 1e9, rel=0.01)
    if active_name is not None:
        value, half_unit = _digits(active_name)
        assert abs(active - value) <= half_unit


def test_the_397b_preset_builds_on_meta_quickly() -> None:
    hub = lmhub.get_model_hub("qwen3_5")
    config = hub.get_arch_config("qwen3_5_397b_a17b")
    hub.create_new_model(config, meta=True)  # warm up imports
    start = time.perf_counter()
    model = hub.create_new_model(config, meta=True)
    assert time.perf_counter() - start < 1.0
    assert model.mixer_types.count("full") == 15


def test_the_published_27b_config_reads_as_the_preset() -> None:
    assert hf().config_from_hf(CONFIG_27B) == qwen3_5_family.archs.get("qwen3_5_27b")


@pytest.mark.parametrize(
    "arch", ["qwen3_5_0_8b", "qwen3_5_4b", "qwen3_5_9b", "qwen3_5_35b_a3b", "qwen3_5_tiny"]
)
def test_config_json_round_trips(arch: str) -> None:
    config = qwen3_5_family.archs.get(arch)
    written = hf().config_to_hf(config)
    assert written.get("model_type", "qwen3_5_text") == (
        "qwen3_5_moe_text" if config.moe else "qwen3_5_text"
    )
    back = hf().config_from_hf(written)
    assert back == config


def test_a_moe_qwen3_5_cannot_have_sigmoid_routing_exported() -> None:
    config = lmhub.apply_overrides(
        qwen3_5_family.archs.get("qwen3_5_35b_a3b"), {"moe.scoring": "sigmoid"}
    )
    with pytest.raises(ConfigError) as info:
        hf().config_to_hf(config)
    assert info.value.field == "moe"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"linear_num_value_heads": 33}, "linear_num_value_heads"),
        ({"mixer_types": ["linear", "full"]}, "mixer_types"),
        ({"sliding_window": 128}, "sliding_window"),
        ({"linear_conv_kernel": 0}, "linear_conv_kernel"),
    ],
)
def test_validate_names_the_bad_field(overrides: dict[str, Any], field: str) -> None:
    config = lmhub.apply_overrides(qwen3_5_family.archs.get("qwen3_5_9b"), overrides)
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert info.value.field == field


def test_unknown_layer_types_are_named() -> None:
    with pytest.raises(ConfigError, match="sliding_attention") as info:
        hf().config_from_hf({"num_hidden_layers": 2, "layer_types": ["sliding_attention"] * 2})
    assert info.value.field == "layer_types"


def test_a_packed_document_mask_is_refused_by_the_linear_layers() -> None:
    import torch

    from lmhub.errors import UnsupportedMaskError

    hub = lmhub.get_model_hub("qwen3_5")
    model = hub.create_new_model(hub.get_arch_config("qwen3_5_tiny")).eval()
    ids = torch.randint(0, 256, (1, 6))
    mask = torch.ones(1, 1, 6, 6, dtype=torch.bool).tril()  # one causal document
    with pytest.raises(UnsupportedMaskError, match="packed") as info:
        model(ids, attention_mask=mask)
    assert info.value.shape == (1, 1, 6, 6)
