"""Mixtral <-> Hugging Face: the checkpoint key map and the config.json mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    LLAMA_WEIGHT_MAP,
    decoder_config_from_hf,
    decoder_config_to_hf,
)
from lmhub.models.mixtral.config import MixtralConfig
from lmhub.models.moe_interop import (
    PLAIN_MOE,
    fused_expert_rules,
    per_expert_rules,
    require_moe,
)
from lmhub.nn.moe import MoeConfig

_LAYER, _NATIVE = "model.layers.{i}", "layers.{i}.ffn"

# Checkpoints (what transformers 5 still writes) keep Mixtral's original per-expert w1/w3/w2
# under block_sparse_moe; transformers 5's in-memory names (mlp.gate, fused experts) load too.
# The MoE rules precede Llama's, whose mlp.{proj}.{p} would otherwise claim mlp.gate.weight.
MIXTRAL_WEIGHT_MAP = WeightMap(
    [
        KeyRule(f"{_LAYER}.block_sparse_moe.gate.weight", f"{_NATIVE}.router.weight"),
        *per_expert_rules(
            f"{_LAYER}.block_sparse_moe.experts", f"{_NATIVE}.experts", ("w1", "w3", "w2")
        ),
        KeyRule(f"{_LAYER}.mlp.gate.weight", f"{_NATIVE}.router.weight"),
        *fused_expert_rules(f"{_LAYER}.mlp.experts", f"{_NATIVE}.experts"),
        *LLAMA_WEIGHT_MAP.rules,
    ],
    tied=LLAMA_WEIGHT_MAP.tied,
)

MIXTRAL_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "max_position_embeddings": 4096 * 32,
    "rms_norm_eps": 1e-5,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
"""transformers' MixtralConfig defaults for the keys a config.json may leave out."""

MIXTRAL_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_bias": False,
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": False,
    "layer_types": None,
}
"""What transformers' Mixtral hard-codes: no biases, no q/k norms, one window for all layers."""

MIXTRAL_ROPE_THETA: Final = 1_000_000.0
"""The RoPE base transformers' Mixtral assumes when a config.json names none."""


def mixtral_config_from_hf(hf: Mapping[str, Any]) -> MixtralConfig:
    """Build a :class:`MixtralConfig` from a Hugging Face Mixtral ``config.json`` dict.

    ``router_jitter_noise`` (multiplicative noise on the router input in training) is not
    modelled: fine-tuning runs without it.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    if "rope_theta" not in hf and not hf.get("rope_parameters") and not hf.get("rope_scaling"):
        hf = {**hf, "rope_theta": MIXTRAL_ROPE_THETA}
    window = json_value(hf.get("sliding_window"), int | None, key="sliding_window")
    inner = json_value(hf.get("intermediate_size", 14336), int, key="intermediate_size")
    moe = MoeConfig(
        num_experts=json_value(hf.get("num_local_experts", 8), int, key="num_local_experts"),
        top_k=json_value(hf.get("num_experts_per_tok", 2), int, key="num_experts_per_tok"),
        expert_inner_dim=inner,
        aux_loss_coef=json_value(
            hf.get("router_aux_loss_coef", 0.001), float, key="router_aux_loss_coef"
        ),
    )
    return decoder_config_from_hf(
        hf,
        MixtralConfig,
        defaults={**MIXTRAL_HF_DEFAULTS, "intermediate_size": inner},
        fixed={**MIXTRAL_HF_FIXED, "sliding_window": window, "moe": moe},
    )


def mixtral_config_to_hf(config: MixtralConfig) -> dict[str, Any]:
    """Build a Hugging Face Mixtral ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Mixtral lacks (a shared expert,
            an expert width other than ``ffn_inner_dim``, ...).
    """
    moe = require_moe(
        config,
        "mixtral",
        **PLAIN_MOE,
        norm_topk=True,
        dense_layers=None,
        expert_inner_dim=config.ffn_inner_dim,
    )
    hf = decoder_config_to_hf(config, fixed=MIXTRAL_HF_FIXED, model_type="mixtral", own=("moe",))
    return {
        **hf,
        "sliding_window": config.sliding_window,
        "num_local_experts": moe.num_experts,
        "num_experts_per_tok": moe.top_k,
        "router_aux_loss_coef": moe.aux_loss_coef,
    }
