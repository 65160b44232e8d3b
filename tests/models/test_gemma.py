"""The Gemma (1) family: preset sizes, Gemma's norms and embedding scale, and its config.json
mapping (parity with transformers is in tests/oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.gemma import gemma_family

# The Gemma report's (Gemma Team, 2024, table 2) non-embedding parameter counts, exact, and the
# model cards' totals in billions. The report counts 256,128 embedding rows; the released
# checkpoints have 256,000, so only the totals on the cards are compared for the embedding part.
PUBLISHED = {"gemma_2b": (1_981_884_416, 2.51e9), "gemma_7b": (7_751_248_896, 8.54e9)}

HF_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 96,
    "vocab_size": 160,
}


def hf() -> Any:
    assert gemma_family.hf is not None
    return gemma_family.hf


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(gemma_family.archs) - {"gemma_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    hub = lmhub.get_model_hub("gemma")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    total = sum(p.numel() for p in model.parameters())  # tied: the head is the embedding
    assert total - model.embed.weight.numel() == PUBLISHED[arch][0]
    assert total == pytest.approx(PUBLISHED[arch][1], rel=0.01)


@pytest.mark.parametrize("arch", gemma_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = gemma_family.archs.get(arch)
    back = hf().config_from_hf(hf().config_to_hf(config))
    assert back == dataclasses.replace(config, head_dim=config.resolved_head_dim())


def test_missing_keys_take_transformers_defaults() -> None:
    config = hf().config_from_hf(HF_CONFIG)
    assert (config.head_dim, config.num_kv_heads, config.tie_embeddings) == (256, 4, True)
    assert (config.ffn_activation, config.norm_unit_offset, config.scale_embeddings) == (
        "gelu_tanh",
        True,
        True,
    )
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (2, 1, 0)


@pytest.mark.parametrize(
    ("keys", "activation"),
    [
        ({"hidden_act": "gelu"}, "gelu_tanh"),  # the first releases' name for the tanh GELU
        ({"hidden_act": "gelu_pytorch_tanh"}, "gelu_tanh"),
        ({"hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh"}, "gelu_tanh"),
        ({"hidden_act": "gelu_pytorch_tanh", "hidden_activation": None}, "gelu_tanh"),
    ],
)
def test_activation_names_read_as_transformers_reads_them(
    keys: dict[str, Any], activation: str
) -> None:
    assert hf().config_from_hf({**HF_CONFIG, **keys}).ffn_activation == activation


def test_an_unknown_activation_names_the_key() -> None:
    with pytest.raises(ConfigError, match="'relu2'") as info:
        hf().config_from_hf({**HF_CONFIG, "hidden_act": "relu2"})
    assert info.value.field == "hidden_act"


def test_export_refuses_what_transformers_gemma_cannot_express() -> None:
    config = gemma_family.archs.get("gemma_tiny")
    with pytest.raises(ConfigError) as info:
        hf().config_to_hf(dataclasses.replace(config, sandwich_norms=True))
    assert info.value.field == "sandwich_norms"
    with pytest.raises(ConfigError) as info:
        hf().config_to_hf(dataclasses.replace(config, ffn_activation="silu"))
    assert info.value.field == "ffn_activation"


def test_norms_start_as_identity_and_embeddings_are_scaled() -> None:
    config = dataclasses.replace(gemma_family.archs.get("gemma_tiny"), num_layers=1)
    model = lmhub.get_model_hub("gemma").create_new_model(config).eval()
    norms = [model.final_norm, model.layers[0].attn_norm, model.layers[0].ffn_norm]
    assert all(n.unit_offset and not n.weight.any() for n in norms)  # offsets from one
    ids = torch.tensor([[3, 5, 7]])
    hidden = model.embed(ids)
    x = torch.randn(2, 256)
    assert torch.allclose(model.final_norm(x), x * torch.rsqrt(x.pow(2).mean(-1, True) + 1e-6))
    # sqrt(model_dim) = 16 on the embeddings: a layer with zeroed sublayers passes it through.
    for p in model.layers[0].parameters():
        p.data.zero_()
    model.final_norm = torch.nn.Identity()
    with torch.no_grad():
        assert torch.allclose(model(ids, return_hidden=True), 16 * hidden)


# google/gemma-2b's config.json (transformers 4.38).
GEMMA_2B_JSON: dict[str, Any] = {
    "architectures": ["GemmaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "head_dim": 256,
    "hidden_act": "gelu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 16384,
    "max_position_embeddings": 8192,
    "model_type": "gemma",
    "num_attention_heads": 8,
    "num_hidden_layers": 18,
    "num_key_value_heads": 1,
    "pad_token_id": 0,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.38.0.dev0",
    "use_cache": True,
    "vocab_size": 256000,
}


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(GEMMA_2B_JSON) == gemma_family.archs.get("gemma_2b")
