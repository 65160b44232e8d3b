"""GPT-NeoX <-> Hugging Face: the weight map (fused q/k/v split per head) and the config.json
mapping.

transformers' GPT-NeoX fuses q/k/v into one ``query_key_value`` projection whose output is laid
out per head, ``[heads, 3, head_dim]`` (each head's query, key and value side by side). lmhub's
shared attention keeps q/k/v apart, so the map splits that layout head by head on import
(:class:`~lmhub.checkpoint.weight_map.Chunk` with ``groups="num_heads"``) and interleaves it
again on export.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import Chunk, KeyRule, WeightMap
from lmhub.models.gpt2.interop import activation_to_hf, hf_activation
from lmhub.models.gpt_neox.config import GPTNeoXConfig
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import rope_from_hf, rope_to_hf

_L, _H = "gpt_neox.layers.{i}", "layers.{i}"
_QKV = ("q_proj", "k_proj", "v_proj")

GPT_NEOX_WEIGHT_MAP: Final = WeightMap(
    [
        KeyRule("gpt_neox.embed_in.weight", "embed.weight"),
        KeyRule(f"{_L}.input_layernorm.{{p}}", f"{_H}.attn_norm.{{p}}"),
        KeyRule(f"{_L}.post_attention_layernorm.{{p}}", f"{_H}.ffn_norm.{{p}}"),
        KeyRule(
            f"{_L}.attention.query_key_value.{{p}}",
            tuple(f"{_H}.attn.{q}.{{p}}" for q in _QKV),
            ops=(Chunk(dim=0, groups="num_heads"),),
        ),
        KeyRule(f"{_L}.attention.dense.{{p}}", f"{_H}.attn.o_proj.{{p}}"),
        KeyRule(f"{_L}.mlp.dense_h_to_4h.{{p}}", f"{_H}.ffn.fc1.{{p}}"),
        KeyRule(f"{_L}.mlp.dense_4h_to_h.{{p}}", f"{_H}.ffn.fc2.{{p}}"),
        KeyRule("gpt_neox.final_layer_norm.{p}", "final_norm.{p}"),
        KeyRule("embed_out.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
    # Buffers the published Pythia checkpoints carry: causal-mask tables, RoPE frequencies.
    ignored=[f"{_L}.attention.{b}" for b in ("bias", "masked_bias", "rotary_emb.inv_freq")],
)

_HF_FIELDS: Final[tuple[tuple[str, str, Any, Any], ...]] = (
    # (HF key, lmhub field, type, transformers' default)
    ("hidden_size", "model_dim", int, 6144),
    ("num_hidden_layers", "num_layers", int, 44),
    ("num_attention_heads", "num_heads", int, 64),
    ("intermediate_size", "ffn_inner_dim", int, 24576),
    ("vocab_size", "vocab_size", int, 50432),
    ("max_position_embeddings", "max_seq_len", int, 2048),
    ("layer_norm_eps", "norm_eps", float, 1e-5),
    ("use_parallel_residual", "use_parallel_residual", bool, True),
    ("attention_bias", "attn_bias", bool, True),
    ("attention_dropout", "dropout_p", float, 0.0),
    ("initializer_range", "init_std", float, 0.02),
    ("tie_word_embeddings", "tie_embeddings", bool, False),
    ("bos_token_id", "bos_token_id", int | None, 0),
    ("eos_token_id", "eos_token_id", int | list[int] | None, 2),
    ("pad_token_id", "pad_token_id", int | None, None),
)


def _partial_factor(hf: Mapping[str, Any]) -> float:
    # transformers 5 keeps it in rope_parameters; 4 (and the Pythia files) in rotary_pct.
    params = hf.get("rope_parameters")
    if isinstance(params, dict) and params.get("partial_rotary_factor") is not None:
        key, value = "rope_parameters.partial_rotary_factor", params["partial_rotary_factor"]
    elif hf.get("partial_rotary_factor") is not None:
        key, value = "partial_rotary_factor", hf["partial_rotary_factor"]
    else:
        key, value = "rotary_pct", hf.get("rotary_pct", 0.25)
    return json_value(value, float, key=key)


def gpt_neox_config_from_hf(hf: Mapping[str, Any]) -> GPTNeoXConfig:
    """Build a :class:`GPTNeoXConfig` from a Hugging Face GPT-NeoX ``config.json`` dict.

    Reads the transformers 4 spelling (``rotary_pct``, ``rotary_emb_base``) and the
    transformers 5 one (``rope_parameters`` with ``partial_rotary_factor`` and ``rope_theta``).

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of an ill-typed or unsupported
            value.
    """
    values = {
        field: json_value(hf.get(key, default), tp, key=key)
        for key, field, tp, default in _HF_FIELDS
    }
    fraction = _partial_factor(hf)
    # The shared RoPE reader knows nothing of partial rotation: hand it the rest.
    rope = {k: v for k, v in hf.items() if k not in ("partial_rotary_factor", "rotary_pct")}
    if isinstance(rope.get("rope_parameters"), dict):
        params = dict(rope["rope_parameters"])
        params.pop("partial_rotary_factor", None)
        rope["rope_parameters"] = params
    if rope.get("rope_theta") is None and "rotary_emb_base" in hf:
        rope["rope_theta"] = json_value(hf["rotary_emb_base"], float, key="rotary_emb_base")
    theta, scaling = rope_from_hf(rope)
    return GPTNeoXConfig(
        **values,
        partial_rotary_factor=fraction,
        rope_theta=theta,
        rope_scaling=scaling,
        activation=hf_activation(hf, "hidden_act", "gelu"),
    )


def gpt_neox_config_to_hf(config: GPTNeoXConfig) -> dict[str, Any]:
    """Build a Hugging Face GPT-NeoX ``config.json`` dict (without model_type/architectures),
    readable by transformers 4 and 5."""
    rope = rope_to_hf(config.rope_theta, config.rope_scaling, max_seq_len=config.max_seq_len)
    rope["rope_parameters"]["partial_rotary_factor"] = config.partial_rotary_factor
    return {
        **{key: getattr(config, field) for key, field, _, _ in _HF_FIELDS},
        **rope,
        "rotary_pct": config.partial_rotary_factor,
        "rotary_emb_base": config.rope_theta,
        "hidden_act": activation_to_hf(config.activation),
        "hidden_dropout": 0.0,
    }
