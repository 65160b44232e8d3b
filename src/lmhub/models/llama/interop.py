"""Llama <-> Hugging Face: the checkpoint key map and the config.json mapping."""

from __future__ import annotations

from typing import Any

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.rope import rope_scaling_from_hf, rope_scaling_to_hf

# HF Llama keeps q/k/v separate and uses rotate-half RoPE, like lmhub: the map is a pure rename.
LLAMA_WEIGHT_MAP = WeightMap(
    [
        KeyRule("model.embed_tokens.weight", "embed.weight"),
        KeyRule("model.layers.{i}.self_attn.{proj}.{p}", "layers.{i}.attn.{proj}.{p}"),
        KeyRule("model.layers.{i}.mlp.{proj}.{p}", "layers.{i}.ffn.{proj}.{p}"),
        KeyRule("model.layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
        KeyRule("model.layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
        KeyRule("model.norm.weight", "final_norm.weight"),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
)


def _get(hf: dict[str, Any], key: str, default: Any = None) -> Any:
    value = hf.get(key, default)
    return default if value is None else value


def llama_config_from_hf(hf: dict[str, Any]) -> LlamaConfig:
    """Build a :class:`LlamaConfig` from a Hugging Face Llama ``config.json`` dict.

    Accepts both ``rope_theta``/``rope_scaling`` (transformers 4) and ``rope_parameters``
    (transformers 5).
    """
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ConfigError(
            f"The Llama config uses hidden_act '{act}', but lmhub's Llama supports only 'silu'.",
            field="hidden_act",
            value=act,
        )
    theta, scaling = rope_scaling_from_hf(hf)
    num_heads = hf["num_attention_heads"]
    return LlamaConfig(
        model_dim=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=num_heads,
        num_kv_heads=_get(hf, "num_key_value_heads", num_heads),
        head_dim=hf.get("head_dim"),
        ffn_inner_dim=hf["intermediate_size"],
        vocab_size=hf["vocab_size"],
        max_seq_len=_get(hf, "max_position_embeddings", 2048),
        rope_theta=float(theta),
        rope_scaling=scaling,
        norm_eps=float(_get(hf, "rms_norm_eps", 1e-6)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        dropout_p=float(_get(hf, "attention_dropout", 0.0)),
        attn_bias=bool(hf.get("attention_bias", False)),
        ffn_bias=bool(hf.get("mlp_bias", False)),
        init_std=float(_get(hf, "initializer_range", 0.02)),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=hf.get("eos_token_id"),
        pad_token_id=hf.get("pad_token_id"),
    )


def llama_config_to_hf(config: LlamaConfig) -> dict[str, Any]:
    """Build a Hugging Face Llama ``config.json`` dict (without model_type/architectures)."""
    return {
        "hidden_size": config.model_dim,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.resolved_head_dim(),
        "intermediate_size": config.ffn_inner_dim,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_seq_len,
        **rope_scaling_to_hf(
            config.rope_theta, config.rope_scaling, max_seq_len=config.max_seq_len
        ),
        "rms_norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_embeddings,
        "attention_dropout": config.dropout_p,
        "attention_bias": config.attn_bias,
        "mlp_bias": config.ffn_bias,
        "initializer_range": config.init_std,
        "hidden_act": "silu",
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
    }
