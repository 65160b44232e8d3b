"""Qwen3-MoE <-> Hugging Face: the checkpoint key map and the config.json mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import (
    LLAMA_WEIGHT_MAP,
    decoder_config_from_hf,
    decoder_config_to_hf,
)
from lmhub.models.moe_interop import PLAIN_MOE, fused_expert_rules, per_expert_rules, require_moe
from lmhub.models.qwen3.interop import QWEN3_HF_DEFAULTS, QWEN3_HF_FIXED
from lmhub.models.qwen3_moe.config import Qwen3MoeConfig
from lmhub.nn.moe import MoeConfig

_LAYER, _NATIVE = "model.layers.{i}.mlp", "layers.{i}.ffn"

# Per-expert checkpoints (what transformers 5 writes) and transformers 5's fused in-memory
# names; dense layers (mlp_only_layers) keep Llama's mlp.{proj} names. The MoE rules come
# first: Llama's mlp.{proj}.{p} would otherwise claim mlp.gate.weight.
QWEN3_MOE_WEIGHT_MAP = WeightMap(
    [
        KeyRule(f"{_LAYER}.gate.weight", f"{_NATIVE}.router.weight"),
        *per_expert_rules(f"{_LAYER}.experts", f"{_NATIVE}.experts"),
        *fused_expert_rules(f"{_LAYER}.experts", f"{_NATIVE}.experts"),
        *LLAMA_WEIGHT_MAP.rules,
    ],
    tied=LLAMA_WEIGHT_MAP.tied,
)

QWEN3_MOE_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **QWEN3_HF_DEFAULTS,
    "head_dim": None,  # no field of its own: hidden_size // num_attention_heads unless given
    "intermediate_size": 6144,
}
"""transformers' Qwen3MoeConfig defaults for the keys a config.json may leave out."""

QWEN3_MOE_HF_FIXED: Final[Mapping[str, Any]] = {**QWEN3_HF_FIXED, "layer_types": None}
"""What transformers' Qwen3-MoE hard-codes: Qwen3's, and one window for every layer."""


def qwen3_moe_config_from_hf(hf: Mapping[str, Any]) -> Qwen3MoeConfig:
    """Build a :class:`Qwen3MoeConfig` from a Hugging Face Qwen3-MoE ``config.json`` dict.

    A layer is dense when ``mlp_only_layers`` lists it or ``(i + 1) % decoder_sparse_step``
    is not 0, as in transformers; ``use_sliding_window`` slides every layer.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    layers = json_value(hf.get("num_hidden_layers"), int, key="num_hidden_layers")
    step = json_value(hf.get("decoder_sparse_step", 1), int, key="decoder_sparse_step")
    if step <= 0:
        raise ConfigError(
            f"The key 'decoder_sparse_step' is {step}; it must be a positive integer.",
            field="decoder_sparse_step",
            value=step,
        )
    only = json_value(hf.get("mlp_only_layers") or [], list[int], key="mlp_only_layers")
    dense = [i for i in range(layers) if i in only or (i + 1) % step]
    experts_key = "num_experts" if "num_experts" in hf else "num_local_experts"
    moe = MoeConfig(
        num_experts=json_value(hf.get(experts_key, 128), int, key=experts_key),
        top_k=json_value(hf.get("num_experts_per_tok", 8), int, key="num_experts_per_tok"),
        expert_inner_dim=json_value(
            hf.get("moe_intermediate_size", 768), int, key="moe_intermediate_size"
        ),
        norm_topk=json_value(hf.get("norm_topk_prob", False), bool, key="norm_topk_prob"),
        aux_loss_coef=json_value(
            hf.get("router_aux_loss_coef", 0.001), float, key="router_aux_loss_coef"
        ),
        dense_layers=dense or None,
    )
    slides = json_value(hf.get("use_sliding_window", False), bool, key="use_sliding_window")
    window = json_value(hf.get("sliding_window", 4096), int | None, key="sliding_window")
    return decoder_config_from_hf(
        hf,
        Qwen3MoeConfig,
        defaults=QWEN3_MOE_HF_DEFAULTS,
        fixed={**QWEN3_MOE_HF_FIXED, "sliding_window": window if slides else None, "moe": moe},
    )


def qwen3_moe_config_to_hf(config: Qwen3MoeConfig) -> dict[str, Any]:
    """Build a Hugging Face Qwen3-MoE ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Qwen3-MoE lacks.
    """
    moe = require_moe(config, "qwen3_moe", **PLAIN_MOE)
    hf = decoder_config_to_hf(
        config, fixed=QWEN3_MOE_HF_FIXED, model_type="qwen3_moe", own=("moe",)
    )
    return {
        **hf,
        "use_sliding_window": config.sliding_window is not None,
        "sliding_window": config.sliding_window,
        "num_experts": moe.num_experts,
        "num_experts_per_tok": moe.top_k,
        "moe_intermediate_size": moe.expert_inner_dim,
        "norm_topk_prob": moe.norm_topk,
        "router_aux_loss_coef": moe.aux_loss_coef,
        "decoder_sparse_step": 1,
        "mlp_only_layers": list(moe.dense_layers or []),
    }
