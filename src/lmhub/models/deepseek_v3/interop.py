"""DeepSeek-V3 <-> Hugging Face: the checkpoint key map and the config.json mapping.

HF keeps MLA's projections separate and stores each routed expert as its own three linears;
the map renames the attention, and stacks the experts into ``[experts, ...]`` tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, Stack, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.deepseek_v3.config import DeepseekV3Config
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import decoder_config_from_hf, decoder_config_to_hf
from lmhub.nn.moe import MoeConfig

_ATTN_RENAMES: Final = {
    "q_proj": "q_proj",
    "q_a_proj": "q_a_proj",
    "q_a_layernorm": "q_a_norm",
    "q_b_proj": "q_b_proj",
    "kv_a_proj_with_mqa": "kv_a_proj",
    "kv_a_layernorm": "kv_a_norm",
    "kv_b_proj": "kv_b_proj",
    "o_proj": "o_proj",
}

# The released checkpoint carries its multi-token-prediction module as layer 61 (one past the
# model's 61 layers, counted from 0); transformers skips it on load, and so does lmhub.
_MTP_KEYS: Final = ("model.layers.61.{rest:path}",)

DEEPSEEK_V3_WEIGHT_MAP: Final = WeightMap(
    [
        KeyRule("model.embed_tokens.weight", "embed.weight"),
        *(
            KeyRule(f"model.layers.{{i}}.self_attn.{hf}.{{p}}", f"layers.{{i}}.attn.{ours}.{{p}}")
            for hf, ours in _ATTN_RENAMES.items()
        ),
        KeyRule("model.layers.{i}.mlp.gate.weight", "layers.{i}.ffn.router.weight"),
        KeyRule(
            "model.layers.{i}.mlp.gate.e_score_correction_bias",
            "layers.{i}.ffn.router.e_score_correction_bias",
        ),
        KeyRule(
            "model.layers.{i}.mlp.experts.{e}.{proj}.weight",
            "layers.{i}.ffn.experts.{proj}",
            ops=(Stack("e", "moe.num_experts"),),
        ),
        KeyRule(
            "model.layers.{i}.mlp.shared_experts.{proj}.weight",
            "layers.{i}.ffn.shared_experts.{proj}.weight",
        ),
        KeyRule("model.layers.{i}.mlp.{proj}.weight", "layers.{i}.ffn.{proj}.weight"),
        KeyRule("model.layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
        KeyRule("model.layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
        KeyRule("model.norm.weight", "final_norm.weight"),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
    ignored=_MTP_KEYS,
)

DEEPSEEK_V3_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    "vocab_size": 129_280,
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_dropout": 0.0,
    "attention_bias": False,
    "initializer_range": 0.02,
    "bos_token_id": 0,
    "eos_token_id": 1,
}
"""transformers' DeepseekV3Config defaults for the shared keys a config.json may leave out."""

DEEPSEEK_V3_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "qk_norm": False,
    "sliding_window": None,
    "layer_types": None,
    "ffn_bias": False,
}
"""What transformers' DeepSeek-V3 hard-codes."""

# config.json key -> (lmhub field, transformers' default)
_MLA_KEYS: Final[Mapping[str, tuple[str, Any]]] = {
    "q_lora_rank": ("q_lora_rank", 1536),
    "kv_lora_rank": ("kv_lora_rank", 512),
    "qk_nope_head_dim": ("qk_nope_head_dim", 128),
    "qk_rope_head_dim": ("qk_rope_head_dim", 64),
    "v_head_dim": ("v_head_dim", 128),
    "rope_interleave": ("rope_interleave", True),
}


def _get(hf: Mapping[str, Any], key: str, tp: Any, default: Any) -> Any:
    return json_value(hf[key], tp, key=key) if hf.get(key) is not None else default


def deepseek_v3_config_from_hf(hf: Mapping[str, Any]) -> DeepseekV3Config:
    """Build a :class:`DeepseekV3Config` from a Hugging Face DeepSeek-V3 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    types = DeepseekV3Config.__dataclass_fields__
    mla = {
        # transformers reads a null v_head_dim as its default; a null q_lora_rank is meaningful
        field: (
            json_value(hf[key], types[field].type, key=key, field=field)
            if key in hf and (hf[key] is not None or key == "q_lora_rank")
            else default
        )
        for key, (field, default) in _MLA_KEYS.items()
    }
    num_layers = _get(hf, "num_hidden_layers", int, 61)
    experts = _get(hf, "n_routed_experts", int, 256)
    moe = MoeConfig(
        num_experts=experts,
        top_k=_get(hf, "num_experts_per_tok", int, 8),
        expert_inner_dim=_get(hf, "moe_intermediate_size", int, 2048),
        scoring="sigmoid",
        norm_topk=_get(hf, "norm_topk_prob", bool, True),
        routed_scaling_factor=_get(hf, "routed_scaling_factor", float, 2.5),
        num_groups=_get(hf, "n_group", int, 8),
        topk_groups=_get(hf, "topk_group", int, 4),
        correction_bias=True,
        num_shared_experts=_get(hf, "n_shared_experts", int, 1),
        first_dense_layers=_get(hf, "first_k_dense_replace", int, 3),
    )
    fixed = {
        **DEEPSEEK_V3_HF_FIXED,
        "head_dim": mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"],
        "num_kv_heads": _get(hf, "num_attention_heads", int, 128),
    }
    dense = moe.first_dense_layers >= num_layers
    return decoder_config_from_hf(
        hf,
        DeepseekV3Config,
        defaults=DEEPSEEK_V3_HF_DEFAULTS,
        fixed=fixed,
        **mla,
        moe=None if dense else moe,
    )


def deepseek_v3_config_to_hf(config: DeepseekV3Config) -> dict[str, Any]:
    """Build a Hugging Face DeepSeek-V3 ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' DeepSeek-V3 lacks.
    """
    moe = config.moe
    if moe is not None and (moe.scoring, moe.correction_bias) != ("sigmoid", True):
        raise ConfigError(
            f"The config routes with '{moe.scoring}' scores"
            f"{'' if moe.correction_bias else ' and no correction bias'}, but transformers' "
            "'deepseek_v3' models always route with sigmoid scores and a correction bias, so the "
            "model cannot be exported as a native 'deepseek_v3' directory. Export with "
            "remote_code=True.",
            field="moe.scoring",
            value=moe.scoring,
        )
    hf = decoder_config_to_hf(
        config, fixed=DEEPSEEK_V3_HF_FIXED, model_type="deepseek_v3", own=("moe",)
    )
    sparse = {
        "n_routed_experts": 1,
        "num_experts_per_tok": 1,
        "moe_intermediate_size": config.ffn_inner_dim,
        "norm_topk_prob": True,
        "routed_scaling_factor": 1.0,
        "n_group": 1,
        "topk_group": 1,
        "n_shared_experts": 1,
        "first_k_dense_replace": config.num_layers,  # every layer dense
    }
    if moe is not None:
        sparse = {
            "n_routed_experts": moe.num_experts,
            "num_experts_per_tok": moe.top_k,
            "moe_intermediate_size": moe.expert_inner_dim,
            "norm_topk_prob": moe.norm_topk,
            "routed_scaling_factor": moe.routed_scaling_factor,
            "n_group": moe.num_groups,
            "topk_group": moe.topk_groups,
            "n_shared_experts": moe.num_shared_experts,
            "first_k_dense_replace": moe.first_dense_layers,
        }
    return {
        **hf,
        "num_key_value_heads": config.num_heads,
        "head_dim": config.qk_rope_head_dim,  # transformers' rotary width
        **{key: getattr(config, field) for key, (field, _) in _MLA_KEYS.items()},
        **sparse,
        "num_nextn_predict_layers": 0,
    }
