"""Phi-3 <-> Hugging Face: the weight map (fused projections split by width) and the
config.json mapping.

transformers' Phi-3 fuses the attention input projections into one ``qkv_proj`` whose output
is ``[q (heads x head_dim), k (kv_heads x head_dim), v (kv_heads x head_dim)]``, and the gated
feed-forward's into one ``gate_up_proj`` (``[gate, up]``). lmhub's shared blocks keep them
apart, so the map splits them on import (:class:`~lmhub.checkpoint.weight_map.Chunk`, sized
from the bound config) and joins them again on export.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import Chunk, KeyRule, WeightMap
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
)
from lmhub.models.phi3.config import Phi3Config

_L, _N = "model.layers.{i}", "layers.{i}"

PHI3_WEIGHT_MAP: Final = WeightMap(
    [
        KeyRule("model.embed_tokens.weight", "embed.weight"),
        KeyRule(
            f"{_L}.self_attn.qkv_proj.weight",
            tuple(f"{_N}.attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj")),
            ops=(Chunk(dim=0, sizes=("q_width", "kv_width", "kv_width")),),
        ),
        KeyRule(f"{_L}.self_attn.o_proj.weight", f"{_N}.attn.o_proj.weight"),
        KeyRule(
            f"{_L}.mlp.gate_up_proj.weight",
            (f"{_N}.ffn.gate_proj.weight", f"{_N}.ffn.up_proj.weight"),
            ops=(Chunk(dim=0),),
        ),
        KeyRule(f"{_L}.mlp.down_proj.weight", f"{_N}.ffn.down_proj.weight"),
        KeyRule(f"{_L}.input_layernorm.weight", f"{_N}.attn_norm.weight"),
        KeyRule(f"{_L}.post_attention_layernorm.weight", f"{_N}.ffn_norm.weight"),
        KeyRule("model.norm.weight", "final_norm.weight"),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
)

PHI3_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "vocab_size": 32064,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "bos_token_id": 1,
    "eos_token_id": 32000,
    "pad_token_id": 32000,
}
"""transformers' Phi3Config defaults for the keys a config.json may leave out."""

PHI3_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_bias": False,
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": False,
    "layer_types": None,
}
"""What transformers' Phi-3 hard-codes: no biases, no q/k norms, one window for all layers."""

PHI3_DEFAULT_ORIGINAL_LEN: Final = 4096
"""The ``original_max_position_embeddings`` transformers' Phi-3 assumes when it is absent."""

# Older Phi-3 configs name LongRoPE "su" (and some "yarn"); transformers reads both as longrope.
_LONGROPE_ALIASES: Final = ("su", "yarn")


def _partial_factor(hf: Mapping[str, Any]) -> float:
    for where in ("rope_scaling", "rope_parameters"):
        params = hf.get(where)
        if isinstance(params, dict) and params.get("partial_rotary_factor") is not None:
            key = f"{where}.partial_rotary_factor"
            return json_value(params["partial_rotary_factor"], float, key=key)
    value = hf.get("partial_rotary_factor", 1.0)
    return json_value(value, float, key="partial_rotary_factor")


def _rope_keys(hf: Mapping[str, Any]) -> dict[str, Any]:
    """``hf`` as the shared RoPE reader expects it: no partial factor, "su" named longrope,
    and the top-level original length (transformers' Phi-3 prefers it, default 4096)."""
    out = {k: v for k, v in hf.items() if k != "partial_rotary_factor"}
    for where in ("rope_scaling", "rope_parameters"):
        params = out.get(where)
        if isinstance(params, dict):
            params = {k: v for k, v in params.items() if k != "partial_rotary_factor"}
            for type_key in ("rope_type", "type"):
                if params.get(type_key) in _LONGROPE_ALIASES:
                    params[type_key] = "longrope"
            out[where] = params
    out["original_max_position_embeddings"] = hf.get(
        "original_max_position_embeddings", PHI3_DEFAULT_ORIGINAL_LEN
    )
    return out


def phi3_config_from_hf(hf: Mapping[str, Any]) -> Phi3Config:
    """Build a :class:`Phi3Config` from a Hugging Face Phi-3 ``config.json`` dict.

    ``sliding_window`` (every layer) is read as transformers reads it: absent or ``null``
    means full attention. ``partial_rotary_factor`` may sit at the top level or in the RoPE
    dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    window = json_value(hf.get("sliding_window"), int | None, key="sliding_window")
    return decoder_config_from_hf(
        _rope_keys(hf),
        Phi3Config,
        defaults=PHI3_HF_DEFAULTS,
        fixed={
            **PHI3_HF_FIXED,
            "sliding_window": window,
            "partial_rotary_factor": _partial_factor(hf),
        },
    )


def phi3_config_to_hf(config: Phi3Config) -> dict[str, Any]:
    """Build a Hugging Face Phi-3 ``config.json`` dict (without model_type/architectures),
    readable by transformers 4 and 5.

    Raises:
        ConfigError: if the config uses a knob transformers' Phi-3 lacks.
    """
    hf = decoder_config_to_hf(
        config, fixed=PHI3_HF_FIXED, model_type="phi3", own=("partial_rotary_factor",)
    )
    scaling = config.rope_scaling
    original = (scaling and scaling.original_max_seq_len) or config.max_seq_len
    partial = config.partial_rotary_factor
    hf["rope_parameters"]["partial_rotary_factor"] = partial
    return {
        **hf,
        "sliding_window": config.sliding_window,
        "original_max_position_embeddings": original,
        "partial_rotary_factor": partial,
    }
