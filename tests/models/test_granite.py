"""The Granite family: preset sizes, the four multipliers, and its config.json mapping (parity
is in tests/oracle)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.granite import granite_family

# Exact counts; Hugging Face's safetensors metadata lists 2.53B and 8.17B parameters.
COUNTS = {"granite3_2b": 2_533_531_648, "granite3_8b": 8_170_848_256}
PUBLISHED = {"granite3_2b": 2.53e9, "granite3_8b": 8.17e9}

# ibm-granite/granite-3.0-2b-base's config.json, as published.
GRANITE3_2B_JSON: dict[str, Any] = {
    "architectures": ["GraniteForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.1,
    "attention_multiplier": 0.015625,
    "bos_token_id": 0,
    "embedding_multiplier": 12.0,
    "eos_token_id": 0,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "logits_scaling": 8.0,
    "max_position_embeddings": 4096,
    "mlp_bias": False,
    "model_type": "granite",
    "num_attention_heads": 32,
    "num_hidden_layers": 40,
    "num_key_value_heads": 8,
    "pad_token_id": 0,
    "residual_multiplier": 0.22,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 49155,
}


def hf() -> Any:
    assert granite_family.hf is not None
    return granite_family.hf


def count(arch: str) -> int:
    hub = lmhub.get_model_hub("granite")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    return sum(p.numel() for p in model.parameters())


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(COUNTS) == set(granite_family.archs) - {"granite_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    assert count(arch) == COUNTS[arch]
    assert count(arch) == pytest.approx(PUBLISHED[arch], rel=0.01)


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_counts_equal_transformers_model_of_the_same_config(arch: str) -> None:
    import transformers

    fields = hf().config_to_hf(granite_family.archs.get(arch))
    with torch.device("meta"):
        theirs = transformers.GraniteForCausalLM(transformers.GraniteConfig(**fields))
    assert sum(p.numel() for p in theirs.parameters()) == count(arch)


@pytest.mark.parametrize("arch", granite_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = granite_family.archs.get(arch)
    back = hf().config_from_hf(hf().config_to_hf(config))
    config.head_dim = config.resolved_head_dim()
    assert back == config


def test_the_published_config_json_reads_as_the_preset() -> None:
    config = hf().config_from_hf(GRANITE3_2B_JSON)
    # The published file trains with attention dropout; the preset is for inference.
    assert config.dropout_p == 0.1
    config.dropout_p = 0.0
    assert config == granite_family.archs.get("granite3_2b")


def test_absent_multipliers_are_transformers_ones() -> None:
    bare = {k: v for k, v in GRANITE3_2B_JSON.items() if "multiplier" not in k}
    del bare["logits_scaling"]
    config = hf().config_from_hf(bare)
    assert (config.embedding_multiplier, config.residual_multiplier) == (1.0, 1.0)
    assert (config.attention_multiplier, config.logits_scaling) == (1.0, 1.0)


def test_logits_are_divided_by_logits_scaling() -> None:
    hub = lmhub.get_model_hub("granite")
    config = hub.get_arch_config("granite_tiny")
    model = hub.create_new_model(config).eval()
    ids = torch.randint(0, config.vocab_size, (1, 5))
    with torch.no_grad():
        hidden = model(ids, return_hidden=True)
        assert torch.equal(model(ids), model.lm_head(hidden) / 8.0)


def test_bad_multipliers_are_config_errors() -> None:
    for name in ("embedding_multiplier", "residual_multiplier", "logits_scaling"):
        config = granite_family.archs.get("granite_tiny")
        setattr(config, name, 0.0)
        with pytest.raises(ConfigError) as info:
            config.validate()
        assert info.value.field == name


def test_export_writes_the_default_attention_scale_as_a_number() -> None:
    config = granite_family.archs.get("granite_tiny")
    config.attention_multiplier = None
    assert hf().config_to_hf(config)["attention_multiplier"] == 32**-0.5
