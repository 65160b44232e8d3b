"""gpt-oss <-> Hugging Face: the checkpoint key map (MXFP4 experts included) and the
config.json mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.mxfp4 import Mxfp4Dequantize
from lmhub.checkpoint.weight_map import Chunk, KeyRule, Transpose, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.gpt_oss.config import GptOssConfig
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.config import LayerType
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    LLAMA_WEIGHT_MAP,
    decoder_config_from_hf,
    decoder_config_to_hf,
)
from lmhub.models.moe_interop import require_moe
from lmhub.nn.moe import MoeConfig

_EXT, _NAT = "model.layers.{i}.mlp.experts", "layers.{i}.ffn.experts"
_GATE_UP = (f"{_NAT}.gate_proj", f"{_NAT}.up_proj")
# gpt-oss interleaves gate and up rows (gate at even indices): one pair per inner unit.
_DEINTERLEAVE = Chunk(dim=1, groups="moe.expert_inner_dim")

# HF stores the experts fused and [experts, in, out]; the released checkpoints store their
# weights as MXFP4 blocks and scales ([experts, out, in / 32, 16]), dequantised to bf16 on
# load. The dense rules come first, so export writes dense bf16 tensors.
GPT_OSS_WEIGHT_MAP = WeightMap(
    [
        KeyRule("model.layers.{i}.self_attn.sinks", "layers.{i}.attn.sinks"),
        KeyRule("model.layers.{i}.mlp.router.{p}", "layers.{i}.ffn.router.{p}"),
        KeyRule(f"{_EXT}.gate_up_proj", _GATE_UP, ops=(Transpose(1, 2), _DEINTERLEAVE)),
        KeyRule(
            f"{_EXT}.gate_up_proj_bias",
            (f"{_NAT}.gate_bias", f"{_NAT}.up_bias"),
            ops=(_DEINTERLEAVE,),
        ),
        KeyRule(f"{_EXT}.down_proj", f"{_NAT}.down_proj", ops=(Transpose(1, 2),)),
        KeyRule(f"{_EXT}.down_proj_bias", f"{_NAT}.down_bias"),
        KeyRule(
            (f"{_EXT}.gate_up_proj_blocks", f"{_EXT}.gate_up_proj_scales"),
            _GATE_UP,
            ops=(Mxfp4Dequantize(), _DEINTERLEAVE),
        ),
        KeyRule(
            (f"{_EXT}.down_proj_blocks", f"{_EXT}.down_proj_scales"),
            f"{_NAT}.down_proj",
            ops=(Mxfp4Dequantize(),),
        ),
        *LLAMA_WEIGHT_MAP.rules,
    ],
    tied=LLAMA_WEIGHT_MAP.tied,
)

GPT_OSS_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "head_dim": 64,
    "attention_bias": True,
    "intermediate_size": 2880,
}
"""transformers' GptOssConfig defaults for the keys a config.json may leave out."""

GPT_OSS_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": False,
    "attn_sinks": True,
}
"""What transformers' gpt-oss hard-codes: sinks on every layer, one bias switch for q/k/v/o."""

_HF_LAYER_TYPES: Final[Mapping[str, LayerType]] = {
    "sliding_attention": "sliding",
    "full_attention": "full",
}

GPT_OSS_ROPE: Final[Mapping[str, Any]] = {
    "rope_type": "yarn",
    "factor": 32.0,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "truncate": False,
    "original_max_position_embeddings": 4096,
    "rope_theta": 150_000.0,
}
"""The RoPE transformers' gpt-oss assumes when a config.json names none."""


def gpt_oss_config_from_hf(hf: Mapping[str, Any]) -> GptOssConfig:
    """Build a :class:`GptOssConfig` from a Hugging Face gpt-oss ``config.json`` dict.

    A ``quantization_config`` (the released MXFP4 checkpoints) is ignored: the weight map
    dequantises the experts to bf16 as they load.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    if not hf.get("rope_parameters") and not hf.get("rope_scaling"):
        hf = {
            **hf,
            "rope_parameters": {**GPT_OSS_ROPE, "rope_theta": hf.get("rope_theta", 150_000.0)},
        }
    layers = json_value(hf.get("num_hidden_layers", 36), int, key="num_hidden_layers")
    names = json_value(hf.get("layer_types"), list[str] | None, key="layer_types")
    if names is None:
        names = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
    unknown = [n for n in names if n not in _HF_LAYER_TYPES]
    if unknown:
        raise ConfigError(
            f"The key 'layer_types' holds '{unknown[0]}'; lmhub's gpt-oss reads only "
            f"{' and '.join(_HF_LAYER_TYPES)}.",
            field="layer_types",
            value=unknown[0],
        )
    window = json_value(hf.get("sliding_window", 128), int | None, key="sliding_window")
    types = [_HF_LAYER_TYPES[n] for n in names]
    if window is None:
        types = ["full"] * len(types)
    moe = MoeConfig(
        num_experts=json_value(
            hf.get("num_local_experts", hf.get("num_experts", 128)), int, key="num_local_experts"
        ),
        top_k=json_value(hf.get("num_experts_per_tok", 4), int, key="num_experts_per_tok"),
        expert_inner_dim=json_value(
            hf.get("intermediate_size", 2880), int, key="intermediate_size"
        ),
        router_bias=True,
        expert_bias=True,
        swiglu_limit=json_value(hf.get("swiglu_limit", 7.0), float, key="swiglu_limit"),
        swiglu_alpha=json_value(hf.get("swiglu_alpha", 1.702), float, key="swiglu_alpha"),
        aux_loss_coef=json_value(
            hf.get("router_aux_loss_coef", 0.001), float, key="router_aux_loss_coef"
        ),
    )
    return decoder_config_from_hf(
        hf,
        GptOssConfig,
        defaults=GPT_OSS_HF_DEFAULTS,
        fixed={**GPT_OSS_HF_FIXED, "sliding_window": window, "layer_types": types, "moe": moe},
    )


def gpt_oss_config_to_hf(config: GptOssConfig) -> dict[str, Any]:
    """Build a Hugging Face gpt-oss ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' gpt-oss lacks.
    """
    moe = require_moe(
        config,
        "gpt_oss",
        scoring="softmax",
        norm_topk=True,
        routed_scaling_factor=1.0,
        num_groups=1,
        correction_bias=False,
        router_bias=True,
        expert_bias=True,
        activation="silu",
        num_shared_experts=0,
        shared_inner_dim=None,
        first_dense_layers=0,
        dense_layers=None,
        expert_inner_dim=config.ffn_inner_dim,
    )
    if moe.swiglu_limit is None:
        raise ConfigError(
            "gpt-oss's experts always clamp their SwiGLU, but 'moe.swiglu_limit' is null. Set "
            "it (7.0 in the released models), or export with remote_code=True.",
            field="moe.swiglu_limit",
        )
    hf = decoder_config_to_hf(
        config, fixed=GPT_OSS_HF_FIXED, model_type="gpt_oss", own=("moe", "attn_sinks")
    )
    types = config.layer_types or ["sliding"] * config.num_layers
    return {
        **hf,
        "sliding_window": config.sliding_window,
        "layer_types": [f"{t}_attention" for t in types],
        "num_local_experts": moe.num_experts,
        "num_experts_per_tok": moe.top_k,
        "swiglu_limit": moe.swiglu_limit,
        "swiglu_alpha": moe.swiglu_alpha,
        "router_aux_loss_coef": moe.aux_loss_coef,
    }
