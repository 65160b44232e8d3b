"""The Gemma 2 family: preset sizes, softcaps, sandwich norms, the layer pattern, and its
config.json mapping (parity with transformers is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.gemma2 import gemma2_family
from lmhub.models.gemma2.config import alternating_layer_types

# The Gemma 2 report's (Gemma Team, 2024, table 2) non-embedding parameter counts, exact, and
# the model cards' totals. The report counts 256,128 embedding rows; the checkpoints hold
# 256,000.
PUBLISHED = {
    "gemma2_2b": (2_024_517_888, 2.61e9),
    "gemma2_9b": (8_324_201_984, 9.24e9),
    "gemma2_27b": (26_047_480_320, 27.2e9),
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
    assert gemma2_family.hf is not None
    return gemma2_family.hf


def tiny(**overrides: Any) -> Any:
    config = dataclasses.replace(gemma2_family.archs.get("gemma2_tiny"), **overrides)
    return lmhub.get_model_hub("gemma2").create_new_model(config).eval()


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(gemma2_family.archs) - {"gemma2_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("gemma2")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())  # tied: the head is the embedding
    assert total - model.embed.weight.numel() == PUBLISHED[arch][0]
    assert total == pytest.approx(PUBLISHED[arch][1], rel=0.01)


@pytest.mark.parametrize("arch", gemma2_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = gemma2_family.archs.get(arch)
    back = hf().config_from_hf(hf().config_to_hf(config))
    assert back == dataclasses.replace(config, head_dim=config.resolved_head_dim())


def test_missing_keys_take_transformers_defaults() -> None:
    config = hf().config_from_hf(HF_CONFIG)
    assert config.layer_types == ["sliding", "full", "sliding", "full"]  # sliding first
    assert (config.sliding_window, config.query_pre_attn_scalar) == (4096, 256)
    assert (config.attn_logit_softcap, config.final_logit_softcap) == (50.0, 30.0)
    assert (config.ffn_activation, config.sandwich_norms, config.tie_embeddings) == (
        "gelu_tanh",
        True,
        True,
    )


@pytest.mark.parametrize(
    ("keys", "want"),
    [
        ({"sliding_window": None}, (None, None)),
        ({"layer_types": ["sliding_attention"] * 4}, (4096, None)),  # all slide: Mistral-like
        ({"layer_types": ["full_attention"] * 4}, (None, None)),
        (
            {"layer_types": ["full_attention", "sliding_attention"] * 2},
            (4096, ["full", "sliding"] * 2),
        ),
    ],
)
def test_windows_read_as_transformers_reads_them(keys: dict[str, Any], want: Any) -> None:
    config = hf().config_from_hf({**HF_CONFIG, **keys})
    assert (config.sliding_window, config.layer_types) == want


def test_an_unknown_layer_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match="'chunked_attention'") as info:
        hf().config_from_hf({**HF_CONFIG, "layer_types": ["chunked_attention"] * 4})
    assert info.value.field == "layer_types"


def test_export_needs_a_query_pre_attn_scalar() -> None:
    config = dataclasses.replace(gemma2_family.archs.get("gemma2_tiny"), query_pre_attn_scalar=None)
    with pytest.raises(ConfigError) as info:
        hf().config_to_hf(config)
    assert info.value.field == "query_pre_attn_scalar"


def test_export_writes_whole_scalars_as_integers() -> None:
    hf_config = hf().config_to_hf(gemma2_family.archs.get("gemma2_27b"))
    assert hf_config["query_pre_attn_scalar"] == 144
    assert isinstance(hf_config["query_pre_attn_scalar"], int)
    assert hf_config["layer_types"][:3] == [
        "sliding_attention",
        "full_attention",
        "sliding_attention",
    ]
    assert "hidden_act" not in hf_config and hf_config["hidden_activation"] == "gelu_pytorch_tanh"


def test_final_logits_are_capped() -> None:
    model = tiny(final_logit_softcap=0.5)
    with torch.no_grad():
        model.lm_head.weight.mul_(100.0)  # tied: huge raw logits
        logits = model(torch.tensor([[3, 5, 7, 9]]))
        raw = model.lm_head(model(torch.tensor([[3, 5, 7, 9]]), return_hidden=True))
    assert raw.abs().max() > 10 and logits.abs().max() <= 0.5
    assert torch.allclose(logits, 0.5 * torch.tanh(raw / 0.5))


def test_attention_softcap_and_scalar_change_the_output() -> None:
    ids = torch.tensor([[3, 5, 7, 9, 11]])
    base = tiny(attn_logit_softcap=0.05)  # a cap below the (small, random) scores
    with torch.no_grad():
        want = base(ids)
        for overrides in ({"attn_logit_softcap": None}, {"query_pre_attn_scalar": 8}):
            other = tiny(**overrides)
            other.load_state_dict(base.state_dict())
            assert (other(ids) - want).abs().max() > 1e-4, overrides


def test_sandwich_norms_are_in_every_layer() -> None:
    model = tiny()
    keys = set(model.state_dict())
    for i in range(2):
        names = ("attn_norm", "attn_post_norm", "ffn_norm", "ffn_post_norm")
        assert {f"layers.{i}.{n}.weight" for n in names} <= keys
    assert model.layers[0].attn_post_norm.unit_offset


def test_alternating_layer_types() -> None:
    assert alternating_layer_types(5, 2) == ["sliding", "full", "sliding", "full", "sliding"]
    assert alternating_layer_types(6, 6) == ["sliding"] * 5 + ["full"]


# google/gemma-2-9b's config.json (transformers 4.42).
GEMMA2_9B_JSON: dict[str, Any] = {
    "architectures": ["Gemma2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 30.0,
    "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "model_type": "gemma2",
    "num_attention_heads": 16,
    "num_hidden_layers": 42,
    "num_key_value_heads": 8,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "sliding_window_size": 4096,
    "torch_dtype": "float32",
    "transformers_version": "4.42.0.dev0",
    "use_cache": True,
    "vocab_size": 256000,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(GEMMA2_9B_JSON) == gemma2_family.archs.get("gemma2_9b")
