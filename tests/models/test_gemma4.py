"""The Gemma 4 family: preset sizes (total and active per token), the meta build of the largest
preset, the config.json mapping of the published layouts (text-only and multimodal, with the
global layers' shape in ``global_head_dim`` or transformers 5.23's ``per_layer_config``), the
weight map and validation (parity with transformers is in tests/oracle/test_gemma4_parity.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.gemma4 import Gemma4Model, gemma4_family
from lmhub.nn.moe import count_parameters

# Published sizes in billions (Gemma 4 model card): (total, active per token). For E2B and E4B
# the card's total ("5.1B / 8B with embeddings") counts the whole multimodal checkpoint, so the
# text model is compared with it less the towers lmhub skips, counted from transformers'
# default Gemma4VisionModel (167,364,608) and Gemma4AudioModel (304,824,608) plus their
# embedders into the text width (768 x d and 1536 x d). The 26B A4B and 31B figures are the
# text models' (25.2B total / 3.8B active; 30.7B).
VISION, AUDIO = 167_364_608, 304_824_608


def _towers(model_dim: int) -> int:
    return VISION + AUDIO + 768 * model_dim + 1536 * model_dim


PUBLISHED: dict[str, tuple[float, float | None, int]] = {
    "gemma4_e2b": (5.1e9, None, _towers(1536)),
    "gemma4_e4b": (8.0e9, None, _towers(2560)),
    "gemma4_31b": (30.7e9, None, 0),
    "gemma4_26b_a4b": (25.2e9, 3.8e9, 0),
}

# The text part of google/gemma-4-31B's config.json (multimodal layout), as published.
CONFIG_31B: dict[str, Any] = {
    "architectures": ["Gemma4ForConditionalGeneration"],
    "model_type": "gemma4",
    "text_config": {
        "model_type": "gemma4_text",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attention_k_eq_v": True,
        "enable_moe_block": False,
        "final_logit_softcapping": 30.0,
        "global_head_dim": 512,
        "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 5376,
        "hidden_size_per_layer_input": 0,
        "intermediate_size": 21504,
        "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 10,
        "max_position_embeddings": 262144,
        "num_attention_heads": 32,
        "num_global_key_value_heads": 4,
        "num_hidden_layers": 60,
        "num_key_value_heads": 16,
        "num_kv_shared_layers": 0,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "full_attention": {
                "partial_rotary_factor": 0.25,
                "rope_theta": 1000000.0,
                "rope_type": "proportional",
            },
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
        },
        "sliding_window": 1024,
        "tie_word_embeddings": True,
        "use_double_wide_mlp": False,
        "vocab_size": 262144,
        "vocab_size_per_layer_input": 262144,
    },
    "vision_config": {"model_type": "gemma4_vision"},
}

# The text part of google/gemma-4-E2B's config.json (text-only spelling).
CONFIG_E2B: dict[str, Any] = {
    "model_type": "gemma4_text",
    "hidden_size": 1536,
    "num_hidden_layers": 35,
    "intermediate_size": 6144,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "global_head_dim": 512,
    "vocab_size": 262144,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 131072,
    "sliding_window": 512,
    "final_logit_softcapping": 30.0,
    "use_double_wide_mlp": True,
    "num_kv_shared_layers": 20,
    "hidden_size_per_layer_input": 256,
    "vocab_size_per_layer_input": 262144,
    "attention_k_eq_v": False,
    "tie_word_embeddings": True,
    "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * 7,
    "rope_parameters": {
        "full_attention": {
            "partial_rotary_factor": 0.25,
            "rope_theta": 1000000.0,
            "rope_type": "proportional",
        },
        "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
    },
}


def hf() -> Any:
    assert gemma4_family.hf is not None
    return gemma4_family.hf


def build(arch: str) -> Gemma4Model:
    hub = lmhub.get_model_hub("gemma4")
    return hub.create_new_model(hub.get_arch_config(arch), meta=True)  # type: ignore[return-value]


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(gemma4_family.archs) - {"gemma4_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_counts_match_the_published_sizes(arch: str) -> None:
    total, active = count_parameters(build(arch))
    published_total, published_active, towers = PUBLISHED[arch]
    assert total + towers == pytest.approx(published_total, rel=0.01)
    if published_active is not None:
        assert active == pytest.approx(published_active, rel=0.01)


def test_the_31b_preset_builds_on_meta_quickly() -> None:
    build("gemma4_31b")  # warm up imports
    start = time.perf_counter()
    model = build("gemma4_31b")
    assert time.perf_counter() - start < 1.0
    assert model.layer_windows.count(None) == 10


def test_the_published_31b_config_reads_as_the_preset() -> None:
    assert hf().config_from_hf(CONFIG_31B) == gemma4_family.archs.get("gemma4_31b")


def test_the_published_e2b_config_reads_as_the_preset() -> None:
    assert hf().config_from_hf(CONFIG_E2B) == gemma4_family.archs.get("gemma4_e2b")


@pytest.mark.parametrize("arch", sorted(gemma4_family.archs))
def test_config_json_round_trips(arch: str) -> None:
    config = gemma4_family.archs.get(arch)
    written = hf().config_to_hf(config)
    assert hf().config_from_hf(written) == config
    # transformers 5.23 reads the global layers' shape from per_layer_config alone.
    without = {k: v for k, v in written.items() if not k.startswith(("global_", "num_global"))}
    assert hf().config_from_hf(without) == config


def test_the_e2b_kv_sharing_reuses_the_last_layer_of_each_kind() -> None:
    sources = gemma4_family.archs.get("gemma4_e2b").kv_sources()
    assert sources[:15] == [None] * 15
    assert sources[15] == 13 and sources[19] == 14 and sources[34] == 14


def test_shared_layers_have_no_kv_projections_and_double_wide_ffns() -> None:
    model = build("gemma4_e2b")
    own, shared = model.layers[14].attn, model.layers[15].attn
    assert own.k_proj is not None and shared.k_proj is None and shared.v_proj is None
    assert model.layers[15].ffn.dense.up_proj.out_features == 2 * 6144
    assert model.layers[14].ffn.dense.up_proj.out_features == 6144


def test_k_eq_v_global_layers_have_no_value_projection() -> None:
    model = build("gemma4_31b")
    assert model.layers[5].attn.v_proj is None and model.layers[5].attn.k_proj is not None
    assert model.layers[5].attn.k_proj.out_features == 4 * 512
    assert model.layers[0].attn.v_proj is not None


def test_the_weight_map_splits_and_joins_the_fused_experts() -> None:
    config = lmhub.apply_overrides(
        gemma4_family.archs.get("gemma4_26b_a4b"), {"num_layers": 6, "layer_types": None}
    )
    wm = gemma4_family.weight_map.bind(config)
    fused = torch.randn(128, 2 * 704, 8)
    items = [("model.layers.2.experts.gate_up_proj", fused)]
    native = {key: t for key, t, _ in wm.convert_to_native(items)}
    assert torch.equal(native["layers.2.ffn.moe.experts.gate_proj"], fused[:, :704])
    assert torch.equal(native["layers.2.ffn.moe.experts.up_proj"], fused[:, 704:])
    back = dict(wm.convert_to_external(native.items()))
    assert torch.equal(back["model.layers.2.experts.gate_up_proj"], fused)
    assert wm.to_native("model.language_model.layers.0.layer_scalar") == "layers.0.layer_scalar"


def test_a_moe_gemma4_with_sigmoid_routing_cannot_be_exported() -> None:
    config = lmhub.apply_overrides(
        gemma4_family.archs.get("gemma4_26b_a4b"), {"moe.scoring": "sigmoid"}
    )
    with pytest.raises(ConfigError) as info:
        hf().config_to_hf(config)
    assert info.value.field == "moe"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"layer_types": ["sliding", "full", "full", "sliding"]}, "layer_types"),
        ({"num_kv_shared_layers": 4}, "num_kv_shared_layers"),
        ({"num_kv_shared_layers": 3}, "num_kv_shared_layers"),
        ({"global_head_dim": 0}, "global_head_dim"),
        ({"num_global_kv_heads": 3}, "num_global_kv_heads"),
        ({"per_layer_dim": -1}, "per_layer_dim"),
        ({"final_logit_softcap": 0.0}, "final_logit_softcap"),
    ],
)
def test_validate_names_the_bad_field(overrides: dict[str, Any], field: str) -> None:
    config = lmhub.apply_overrides(gemma4_family.archs.get("gemma4_tiny"), overrides)
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert info.value.field == field


def test_uneven_global_layers_in_per_layer_config_are_refused() -> None:
    written = hf().config_to_hf(gemma4_family.archs.get("gemma4_tiny"))
    written["per_layer_config"]["1"] = {"head_dim": 128}
    with pytest.raises(ConfigError) as info:
        hf().config_from_hf(written)
    assert info.value.field == "per_layer_config"


def test_a_sliding_layer_rope_other_than_plain_is_refused() -> None:
    written = hf().config_to_hf(gemma4_family.archs.get("gemma4_tiny"))
    written["rope_parameters"]["sliding_attention"] = {"rope_type": "linear", "factor": 2.0}
    with pytest.raises(ConfigError) as info:
        hf().config_from_hf(written)
    assert info.value.field == "rope_parameters.sliding_attention"
