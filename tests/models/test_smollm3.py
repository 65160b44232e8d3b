"""The SmolLM3 family: the preset's size, NoPE layers, and its config.json mapping (parity with
transformers is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.smollm3 import smollm3_family

# The model page's parameter count (Hugging Face's safetensors total), as printed.
PUBLISHED = {"smollm3_3b": 3.08e9}
EXACT = {"smollm3_3b": 3_075_098_624}

HF_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 160,
}


def hf() -> Any:
    assert smollm3_family.hf is not None
    return smollm3_family.hf


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(smollm3_family.archs) - {"smollm3_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("smollm3")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())  # tied: the head is the embedding
    assert total == EXACT[arch]
    assert total == pytest.approx(PUBLISHED[arch], rel=0.01)


@pytest.mark.parametrize("arch", smollm3_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = smollm3_family.archs.get(arch)
    assert hf().config_from_hf(hf().config_to_hf(config)) == config


def test_missing_keys_take_transformers_defaults() -> None:
    config = hf().config_from_hf(HF_CONFIG)
    assert config.nope_layers == [3, 7]  # every fourth layer
    assert (config.rope_theta, config.tie_embeddings, config.sliding_window) == (
        2_000_000.0,
        True,
        None,
    )


@pytest.mark.parametrize(
    ("keys", "nope", "windows"),
    [
        ({"no_rope_layer_interval": 2}, [1, 3, 5, 7], [None] * 8),
        ({"no_rope_layers": [1] * 8}, None, [None] * 8),
        ({"no_rope_layers": [0, 1, 1, 1, 1, 1, 1, 1, 0]}, [0], [None] * 8),  # extra flags ok
        # use_sliding_window slides the NoPE layers by default ...
        ({"use_sliding_window": True, "sliding_window": 5}, [3, 7], ([None] * 3 + [5]) * 2),
        # ... but only with a window, and explicit layer types win.
        ({"use_sliding_window": True}, [3, 7], [None] * 8),
        (
            {"sliding_window": 5, "layer_types": ["sliding_attention"] * 8},
            [3, 7],
            [5] * 8,
        ),
    ],
)
def test_nope_and_window_layers_read_as_transformers_reads_them(
    keys: dict[str, Any], nope: Any, windows: list[int | None]
) -> None:
    config = hf().config_from_hf({**HF_CONFIG, **keys})
    assert config.nope_layers == nope
    got = config.layer_windows() if config.sliding_window else [None] * 8
    assert got == windows


def test_too_few_no_rope_flags_name_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        hf().config_from_hf({**HF_CONFIG, "no_rope_layers": [1, 0]})
    assert info.value.field == "no_rope_layers"


@pytest.mark.parametrize("bad", [[2], [0, 0], [-1]])
def test_nope_layers_must_be_distinct_layer_indices(bad: list[int]) -> None:
    config = dataclasses.replace(smollm3_family.archs.get("smollm3_tiny"), nope_layers=bad)
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert info.value.field == "nope_layers"


def test_a_nope_layer_ignores_positions() -> None:
    # One NoPE layer alone is permutation-equivariant over the earlier tokens: the last token's
    # output does not depend on their order. With RoPE it does.
    base = smollm3_family.archs.get("smollm3_tiny")
    outs = {}
    for nope in ([0], None):
        config = dataclasses.replace(base, num_layers=1, nope_layers=nope)
        torch.manual_seed(0)
        model = lmhub.get_model_hub("smollm3").create_new_model(config).eval()
        ids = torch.tensor([[5, 9, 13, 17, 21]])
        swapped = torch.tensor([[9, 5, 17, 13, 21]])
        with torch.no_grad():
            outs[str(nope)] = (model(ids)[0, -1] - model(swapped)[0, -1]).abs().max().item()
    assert outs["[0]"] < 1e-5 and outs["None"] > 1e-3


def test_export_writes_one_rope_flag_per_layer() -> None:
    hf_config = hf().config_to_hf(smollm3_family.archs.get("smollm3_3b"))
    assert hf_config["no_rope_layers"] == [1, 1, 1, 0] * 9
    assert hf_config["use_sliding_window"] is False and "head_dim" not in hf_config


def test_other_families_refuse_nope_layers_on_export() -> None:
    qwen3 = lmhub.get_family("qwen3")
    assert qwen3.hf is not None
    config = dataclasses.replace(qwen3.archs.get("qwen3_tiny"), nope_layers=[0])
    with pytest.raises(ConfigError) as info:
        qwen3.hf.config_to_hf(config)
    assert info.value.field == "nope_layers"


# HuggingFaceTB/SmolLM3-3B's config.json (transformers 4.54).
SMOLLM3_3B_JSON: dict[str, Any] = {
    "architectures": ["SmolLM3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128012,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "layer_types": ["full_attention"] * 36,
    "max_position_embeddings": 65536,
    "max_window_layers": 28,
    "mlp_bias": False,
    "model_type": "smollm3",
    "no_rope_layer_interval": 4,
    "no_rope_layers": [1, 1, 1, 0] * 9,
    "num_attention_heads": 16,
    "num_hidden_layers": 36,
    "num_key_value_heads": 4,
    "pad_token_id": 128004,
    "pretraining_tp": 2,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 5000000.0,
    "sliding_window": None,
    "torch_dtype": "bfloat16",
    "use_cache": False,
    "use_sliding_window": False,
    "vocab_size": 128256,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(SMOLLM3_3B_JSON) == smollm3_family.archs.get("smollm3_3b")
