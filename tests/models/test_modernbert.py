"""The ModernBERT family: preset sizes, the config.json mapping (published and transformers 5
spellings), the layer pattern and the init (parity is in tests/oracle)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.modernbert import modernbert_family

PUBLISHED = {
    "modernbert_base": (149e6, 149_655_232),
    "modernbert_large": (395e6, 395_881_664),
}

# answerdotai/ModernBERT-base's config.json, as published (transformers 4.47 spelling).
MODERNBERT_JSON: dict[str, Any] = {
    "architectures": ["ModernBertForMaskedLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 50281,
    "classifier_activation": "gelu",
    "classifier_bias": False,
    "classifier_dropout": 0.0,
    "classifier_pooling": "mean",
    "cls_token_id": 50281,
    "decoder_bias": True,
    "deterministic_flash_attn": False,
    "embedding_dropout": 0.0,
    "eos_token_id": 50282,
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "gradient_checkpointing": False,
    "hidden_activation": "gelu",
    "hidden_size": 768,
    "initializer_cutoff_factor": 2.0,
    "initializer_range": 0.02,
    "intermediate_size": 1152,
    "layer_norm_eps": 1e-05,
    "local_attention": 128,
    "local_rope_theta": 10000.0,
    "max_position_embeddings": 8192,
    "mlp_bias": False,
    "mlp_dropout": 0.0,
    "model_type": "modernbert",
    "norm_bias": False,
    "norm_eps": 1e-05,
    "num_attention_heads": 12,
    "num_hidden_layers": 22,
    "pad_token_id": 50283,
    "position_embedding_type": "absolute",
    "reference_compile": True,
    "sep_token_id": 50282,
    "sparse_pred_ignore_index": -100,
    "sparse_prediction": False,
    "torch_dtype": "float32",
    "transformers_version": "4.47.0.dev0",
    "vocab_size": 50368,
}


def hf() -> Any:
    assert modernbert_family.hf is not None
    return modernbert_family.hf


def count(arch: str) -> int:
    hub = lmhub.get_model_hub("modernbert")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    return sum(p.numel() for p in model.parameters())


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(modernbert_family.archs) - {"modernbert_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    nominal, exact = PUBLISHED[arch]
    assert count(arch) == exact
    assert count(arch) == pytest.approx(nominal, rel=0.01)


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_counts_equal_transformers_model_of_the_same_config(arch: str) -> None:
    transformers = pytest.importorskip("transformers")
    fields = hf().config_to_hf(modernbert_family.archs.get(arch))
    with torch.device("meta"):
        theirs = transformers.ModernBertForMaskedLM(transformers.ModernBertConfig(**fields))
    assert sum(p.numel() for p in theirs.parameters()) == count(arch)
    assert (
        theirs.config.layer_types
        == hf().config_to_hf(modernbert_family.archs.get(arch))["layer_types"]
    )


@pytest.mark.parametrize("arch", modernbert_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = modernbert_family.archs.get(arch)
    assert hf().config_from_hf(hf().config_to_hf(config)) == config


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(MODERNBERT_JSON) == modernbert_family.archs.get("modernbert_base")


def test_transformers_5_layer_types_and_rope_parameters_are_read() -> None:
    data = {
        **{k: v for k, v in MODERNBERT_JSON.items() if not k.endswith("rope_theta")},
        "num_hidden_layers": 5,
        "layer_types": ["full_attention", "sliding_attention"] * 2 + ["full_attention"],
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": 1000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 50.0},
        },
    }
    config = hf().config_from_hf(data)
    assert config.global_attn_every_n_layers == 2
    assert (config.global_rope_theta, config.local_rope_theta) == (1000.0, 50.0)
    assert [config.is_global(i) for i in range(5)] == [True, False, True, False, True]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"layer_types": ["sliding_attention"] * 22}, "layer_types"),
        ({"layer_types": ["full_attention"] * 3}, "layer_types"),
        (
            {"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 2.0}}},
            "rope_parameters.full_attention.rope_type",
        ),
        ({"rope_parameters": [1, 2]}, "rope_parameters"),
        ({"hidden_activation": "swish2"}, "hidden_activation"),
    ],
)
def test_what_lmhub_cannot_build_is_refused_naming_the_key(
    change: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        hf().config_from_hf({**MODERNBERT_JSON, **change})
    assert info.value.field == key


def test_layers_alternate_global_and_local_attention() -> None:
    model = lmhub.get_model_hub("modernbert").create_new_model(
        modernbert_family.archs.get("modernbert_base"), meta=True
    )
    windows = [layer.attn.sliding_window for layer in model.layers]
    assert windows == [None if i % 3 == 0 else 128 for i in range(22)]
    assert model.layers[0].attn_norm is None and model.layers[1].attn_norm is not None
    assert all(p.ndim == 2 or "norm" in n or "bias" in n for n, p in model.named_parameters())
    assert not any(n.endswith("bias") for n, _ in model.named_parameters() if n != "lm_head.bias")


def test_init_truncates_and_scales_the_residual_writes() -> None:
    config = lmhub.apply_overrides(modernbert_family.archs.get("modernbert_tiny"), {})
    torch.manual_seed(0)
    model = lmhub.get_model_hub("modernbert").create_new_model(config)
    std_in, cut = config.init_std, config.init_cutoff_factor
    std_out = std_in / (2 * config.num_layers) ** 0.5
    q, o = model.layers[1].attn.q_proj.weight, model.layers[1].attn.o_proj.weight
    assert q.abs().max() <= cut * std_in and o.abs().max() <= cut * std_out
    assert q.std().item() == pytest.approx(std_in * 0.88, rel=0.1)  # a 2-sigma cut shrinks it
    assert o.std().item() == pytest.approx(std_out * 0.88, rel=0.1)
    assert torch.equal(model.lm_head.bias, torch.zeros_like(model.lm_head.bias))
