"""The DeepSeek-V3 family: preset sizes (total and active per token), the meta build of the
671B preset, the config.json mapping, and how much smaller the latent KV cache is (parity with
transformers is in tests/oracle/test_deepseek_v3_parity.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.deepseek_v3 import DeepseekV3Config, deepseek_v3_family
from lmhub.nn.kv_cache import StaticKVCache
from lmhub.nn.mla import mla_cache_ratio

# (total, active per token) in billions, as the model cards print them. "Active" counts what a
# token's forward multiplies by: every weight but the routed experts it is not sent to and the
# input embedding (a row lookup).
PUBLISHED = {
    "deepseek_v3": (671.0, 37.0),
    "deepseek_v2_lite": (15.7, 2.4),
}
# The active figures are printed to two digits; V2-Lite's 2.4 stands for 2.45 (2.1% off).
ACTIVE_REL = {"deepseek_v3": 0.011, "deepseek_v2_lite": 0.025}

# The published DeepSeek-V3 config.json (the keys transformers reads).
V3_CONFIG_JSON: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "bos_token_id": 0,
    "eos_token_id": 1,
    "first_k_dense_replace": 3,
    "hidden_act": "silu",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "moe_intermediate_size": 2048,
    "n_group": 8,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "rms_norm_eps": 1e-06,
    "rope_scaling": {
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 40,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 4096,
        "type": "yarn",
    },
    "rope_theta": 10000,
    "routed_scaling_factor": 2.5,
    "tie_word_embeddings": False,
    "topk_group": 4,
    "v_head_dim": 128,
    "vocab_size": 129280,
}


def hf() -> Any:
    assert deepseek_v3_family.hf is not None
    return deepseek_v3_family.hf


def counts(arch: str) -> tuple[float, float]:
    hub = lmhub.get_model_hub("deepseek_v3")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    config, moe = model.config, model.config.moe
    total = sum(p.numel() for p in model.parameters())
    per_expert = sum(p[0].numel() for p in model.layers[-1].ffn.experts.parameters())
    sparse = sum(moe.layer_is_sparse(i) for i in range(config.num_layers))
    idle = sparse * (moe.num_experts - moe.top_k) * per_expert
    return total, total - idle - model.embed.weight.numel()


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(deepseek_v3_family.archs) - {"deepseek_v3_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_counts_match_the_published_sizes(arch: str) -> None:
    total, active = counts(arch)
    assert total == pytest.approx(PUBLISHED[arch][0] * 1e9, rel=0.01)
    assert active == pytest.approx(PUBLISHED[arch][1] * 1e9, rel=ACTIVE_REL[arch])


def test_the_671b_preset_builds_on_meta_quickly() -> None:
    hub = lmhub.get_model_hub("deepseek_v3")
    config = hub.get_arch_config("deepseek_v3")
    hub.create_new_model(config, meta=True)  # warm up imports
    start = time.perf_counter()
    model = hub.create_new_model(config, meta=True)
    assert time.perf_counter() - start < 1.0
    assert len(model.layers) == 61
    assert type(model.layers[2].ffn).__name__ == "GLUFeedForward"
    assert type(model.layers[3].ffn).__name__ == "MoEFeedForward"


def test_the_published_config_json_reads_as_the_preset() -> None:
    config = hf().config_from_hf(V3_CONFIG_JSON)
    preset = deepseek_v3_family.archs.get("deepseek_v3")
    assert config == preset


def test_config_json_round_trips() -> None:
    config = deepseek_v3_family.archs.get("deepseek_v3")
    assert hf().config_from_hf(hf().config_to_hf(config)) == config
    dense = deepseek_v3_family.archs.get("deepseek_v3_tiny")
    dense.moe = None
    written = hf().config_to_hf(dense)
    assert written["first_k_dense_replace"] == dense.num_layers
    assert hf().config_from_hf(written) == dense


def test_softmax_routing_cannot_be_exported_natively() -> None:
    config = deepseek_v3_family.archs.get("deepseek_v2_lite")
    with pytest.raises(ConfigError, match="sigmoid") as info:
        hf().config_to_hf(config)
    assert info.value.field == "moe.scoring"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_kv_heads": 64}, "num_kv_heads"),
        ({"head_dim": 128}, "head_dim"),
        ({"qk_nope_head_dim": 129, "qk_rope_head_dim": 63}, "qk_rope_head_dim"),
        ({"kv_lora_rank": 0}, "kv_lora_rank"),
    ],
)
def test_validate_names_the_bad_field(overrides: dict[str, Any], field: str) -> None:
    config = lmhub.apply_overrides(deepseek_v3_family.archs.get("deepseek_v3"), overrides)
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert info.value.field == field


def test_yarn_mscale_scales_the_softmax() -> None:
    config = deepseek_v3_family.archs.get("deepseek_v3")
    m = 0.1 * 1.0 * torch.log(torch.tensor(40.0)).item() + 1.0
    assert config.softmax_scale() == pytest.approx(192**-0.5 * m * m)
    assert DeepseekV3Config(head_dim=192).softmax_scale() == 192**-0.5


def test_the_latent_cache_is_71_times_smaller_than_a_gqa_cache() -> None:
    config = deepseek_v3_family.archs.get("deepseek_v3")
    ratio = mla_cache_ratio(
        num_kv_heads=config.num_kv_heads,
        qk_head_dim=config.qk_head_dim(),
        v_head_dim=config.v_head_dim,
        kv_lora_rank=config.kv_lora_rank,
        qk_rope_dim=config.qk_rope_head_dim,
    )
    assert ratio == pytest.approx(40960 / 576)

    # Measured on the tiny preset: the bytes a static cache holds for one sequence.
    hub = lmhub.get_model_hub("deepseek_v3")
    tiny = hub.get_arch_config("deepseek_v3_tiny")
    model = hub.create_new_model(tiny).eval()
    cache = StaticKVCache(32)
    with torch.no_grad():
        model(torch.randint(0, 256, (1, 5)), cache=cache)
    held = sum(t.numel() for d in (cache._keys, cache._values) for t in d.values())
    assert held == tiny.num_layers * 32 * (tiny.kv_lora_rank + tiny.qk_rope_head_dim)
    gqa = tiny.num_layers * 32 * tiny.num_heads * (tiny.qk_head_dim() + tiny.v_head_dim)
    assert gqa / held == pytest.approx(
        mla_cache_ratio(
            num_kv_heads=tiny.num_heads,
            qk_head_dim=tiny.qk_head_dim(),
            v_head_dim=tiny.v_head_dim,
            kv_lora_rank=tiny.kv_lora_rank,
            qk_rope_dim=tiny.qk_rope_head_dim,
        )
    )


def test_the_multi_token_prediction_layer_of_the_checkpoint_is_skipped() -> None:
    weight_map = deepseek_v3_family.weight_map.bind(deepseek_v3_family.archs.get("deepseek_v3"))
    t = torch.zeros(1)
    keys = [
        "model.layers.61.eh_proj.weight",
        "model.layers.61.mlp.experts.7.up_proj.weight",
        "model.layers.61.shared_head.norm.weight",
        "model.layers.60.self_attn.kv_a_proj_with_mqa.weight",
    ]
    out = [(new, old) for new, _, old in weight_map.convert_to_native((k, t) for k in keys)]
    assert out == [("layers.60.attn.kv_a_proj.weight", keys[-1])]
